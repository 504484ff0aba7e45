package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// pausable is a backend server a test can freeze (SIGSTOP) and thaw.
type pausable interface {
	Pause()
	Resume()
}

// pausedNode starts a node on a fresh server of backend in its own process
// and returns it with the server. Health checks run every 200ms, so a
// stalled server is noticed quickly.
func pausedNode(t *testing.T, backend, id string) (*runtime.Node, pausable) {
	t.Helper()
	cfg := runtime.Spec{Env: "test", NodeID: id}
	cfg.Connector.HealthInterval = 200 * time.Millisecond
	var srv pausable
	if backend == backends.BackendRedis {
		r := harness.StartRedis(t)
		cfg.Redis, srv = redisConfig(r), r
	} else {
		e := harness.StartEtcdProcess(t)
		cfg.Etcd, srv = etcdConfig(e), e
	}
	node := startNode(t, cfg)
	// Registered after the node's Stop, so it runs before it: the node
	// stops against a live server.
	t.Cleanup(srv.Resume)
	return node, srv
}

// TestUnavailableSurvivesTheActor: while the backend is paused, cache calls
// through the node facade fail as ErrUnavailable. A call whose own context
// still had time left never sees a bare context.DeadlineExceeded (the
// deadline inside the failure is the backend's or the health check's, not
// the caller's); a call whose context ran out matches its deadline.
func TestUnavailableSurvivesTheActor(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			node, srv := pausedNode(t, backend, "unavailable-"+backend)
			cache := node.Cache("paused")
			require.NoError(t, cache.Set(ctxFor(t, 5*time.Second), "k", []byte("v"), 0))

			srv.Pause()
			const callTimeout = 3 * time.Second
			var fast, calls int
			deadline := time.Now().Add(20 * time.Second)
			for fast < 20 && time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
				start := time.Now()
				_, err := cache.Get(ctx, "k")
				elapsed := time.Since(start)
				timeLeft := ctx.Err() == nil
				cancel()
				calls++
				require.Error(t, err, "a get answered while the server is paused")
				what := fmt.Sprintf("call %d after %v (time left: %v): %v", calls, elapsed, timeLeft, err)
				if timeLeft {
					require.ErrorIs(t, err, backends.ErrUnavailable, what)
				} else {
					require.True(t, errors.Is(err, context.DeadlineExceeded), what)
				}
				if elapsed < 100*time.Millisecond {
					fast++ // failed fast: the connector gate is closed
				}
			}
			require.Equal(t, 20, fast, "the gate never failed calls fast (%d calls)", calls)
			t.Logf("%s: %d calls while paused, %d failed fast as ErrUnavailable", backend, calls, fast)

			srv.Resume()
			require.Eventually(t, func() bool {
				v, err := cache.Get(ctxFor(t, time.Second), "k")
				return err == nil && string(v) == "v"
			}, 30*time.Second, 50*time.Millisecond, "the cache never answered again after the pause")
		})
	}
}
