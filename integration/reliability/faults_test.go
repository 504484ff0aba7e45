//go:build reliability

package reliability_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// The helpers of the fault scenarios (locks, discovery, deadlines, the
// paused holder). Their names start with "fault" so that they keep clear
// of the other scenarios' helpers in this package.

// faultBackends are the backends every fault scenario runs on.
var faultBackends = []string{backends.BackendRedis, backends.BackendEtcd}

// faultBackend is the server of one backend, in a process of its own so
// that it can be killed with SIGKILL and frozen with SIGSTOP. Redis runs
// with an fsync per write (harness.WithRedisAOF): a kill -9 and restart
// then keeps what it acknowledged, like etcd, and losing the data is a
// fault of its own (Wipe).
type faultBackend struct {
	kind  string
	redis *harness.Redis
	etcd  *harness.Etcd
}

func startFaultBackend(t *testing.T, kind string) *faultBackend {
	t.Helper()
	t.Setenv("BATON_TEST_CONTAINERS", "") // SIGSTOP needs a local process
	b := &faultBackend{kind: kind}
	if kind == backends.BackendRedis {
		b.redis = harness.StartRedis(t, harness.WithRedisAOF())
	} else {
		b.etcd = harness.StartEtcdProcess(t)
	}
	// Registered before any node, so it runs after their Stop: nodes stop
	// against a live server, not a frozen one.
	t.Cleanup(b.resume)
	return b
}

// addr is where clients reach the server directly.
func (b *faultBackend) addr() string {
	if b.redis != nil {
		return b.redis.Addr()
	}
	return b.etcd.Endpoints()[0]
}

// restart is kill -9 and a start on the same port and data.
func (b *faultBackend) restart() {
	if b.redis != nil {
		b.redis.Restart()
		return
	}
	b.etcd.Restart()
}

func (b *faultBackend) pause() {
	if b.redis != nil {
		b.redis.Pause()
		return
	}
	b.etcd.Pause()
}

func (b *faultBackend) resume() {
	if b.redis != nil {
		b.redis.Resume()
		return
	}
	b.etcd.Resume()
}

// faultSpec is a node whose every component runs on kind, reached at addr
// (the server, or a proxy in front of it). Health checks run every 200ms,
// so that a lost backend is noticed quickly; everything else is default.
func faultSpec(kind, nodeID, addr string) runtime.Spec {
	spec := runtime.Spec{Env: "test", NodeID: nodeID}
	spec.Backends = runtime.BackendChoice{Cache: kind, Lock: kind, Discovery: kind, Config: kind}
	spec.Connector.HealthInterval = 200 * time.Millisecond
	if kind == backends.BackendRedis {
		c := redis.DefaultConfig()
		c.Addrs = []string{addr}
		spec.Redis = &c
	} else {
		c := etcd.DefaultConfig()
		c.Endpoints = []string{addr}
		spec.Etcd = &c
	}
	return spec
}

// startFaultNode starts a node and stops it when the test ends.
func startFaultNode(t *testing.T, spec runtime.Spec) *runtime.Node {
	t.Helper()
	node, err := runtime.New(spec)
	require.NoError(t, err)
	require.NoError(t, node.Start(faultCtx(t, 30*time.Second)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := node.Stop(ctx); err != nil {
			t.Errorf("stop node %s: %v", spec.NodeID, err)
		}
	})
	return node
}

// faultCtx is a context that ends after d or with the test.
func faultCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// faultWait polls cond every 20ms until it holds or d has passed, and
// reports whether it held.
func faultWait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// faultHold keeps a fault on for d: the wait is the fault itself, not a
// wait for something to happen.
func faultHold(t *testing.T, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
	}
}
