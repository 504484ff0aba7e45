package cluster_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/cluster"
)

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestConfigValidate(t *testing.T) {
	sys := &runtime.Spec{Redis: &redis.Config{URL: "redis://127.0.0.1:6379/0"}}
	for _, tc := range []struct {
		name  string
		cfg   cluster.Spec
		field string
	}{
		{"bad bind", cluster.Spec{Node: sys, Bind: "nowhere"}, "cluster.bind"},
		{"bind without host", cluster.Spec{Node: sys, Bind: ":7000"}, "cluster.bind"},
		{"bad advertise", cluster.Spec{Node: sys, Advertise: "a:b:c"}, "cluster.advertise"},
		{"wildcard bind without advertise", cluster.Spec{Node: sys, Bind: "0.0.0.0:7000"}, "cluster.advertise"},
		{"client without seeds", cluster.Spec{}, "cluster.seeds"},
		{"seed without port", cluster.Spec{Seeds: []string{"127.0.0.1:0"}}, "cluster.seeds"},
		{"bad name", cluster.Spec{Node: sys, Name: "a/b"}, "cluster.name"},
		{"negative ttl", cluster.Spec{Node: sys, MemberTTL: -time.Second}, "cluster.member_ttl"},
		{"bad env", cluster.Spec{Seeds: []string{"127.0.0.1:7000"}, Env: "Prod!"}, "env"},
		{"bad node", cluster.Spec{Node: &runtime.Spec{Backends: runtime.BackendChoice{Cache: "mongo"}}}, "backends.cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.ErrorIs(t, err, backends.ErrInvalidArgument)
			var ia *backends.InvalidArgumentError
			require.ErrorAs(t, err, &ia)
			assert.Equal(t, tc.field, ia.Field)
			_, err = cluster.New(tc.cfg)
			assert.ErrorIs(t, err, backends.ErrInvalidArgument)
		})
	}
	assert.NoError(t, cluster.Spec{Node: sys}.Validate())
	assert.NoError(t, cluster.Spec{Seeds: []string{"127.0.0.1:7000"}, Advertise: "127.0.0.9"}.Validate())
}

// startWithin starts n with a bounded context and checks that it fails
// with ErrUnavailable soon after the context ends, never hanging.
func startWithin(t *testing.T, n *cluster.Node, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	began := time.Now()
	err := n.Start(ctx)
	took := time.Since(began)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, took, d+time.Second, "Start returned %v after a %v context", took, d)
	// Stop waits for the clean-up of the failed Start.
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	require.NoError(t, n.Stop(sctx), "a failed Start leaves nothing to stop")
	require.NoError(t, n.Stop(sctx), "Stop is idempotent")
	require.NoError(t, sctx.Err(), "the clean-up of a failed Start ends")
}

func TestFacadesBeforeStart(t *testing.T) {
	n, err := cluster.New(cluster.Spec{Seeds: []string{"127.0.0.1:7000"}})
	require.NoError(t, err)
	_, err = n.Locks().TryAcquire(t.Context(), "x", backends.LockOptions{})
	assert.ErrorIs(t, err, backends.ErrClosed)
	_, err = n.Cache("c").Get(t.Context(), "k")
	assert.ErrorIs(t, err, backends.ErrClosed)
	_, err = n.Config().Get(t.Context(), "k")
	assert.ErrorIs(t, err, backends.ErrClosed)
	assert.NoError(t, n.Stop(t.Context()), "Stop before Start")
	assert.ErrorIs(t, n.Start(t.Context()), backends.ErrClosed, "Start after Stop")
}

func TestStartUnreachableBackend(t *testing.T) {
	sys := runtime.Spec{Env: "test", Redis: &redis.Config{URL: "redis://" + deadAddr(t) + "/0"}}
	n, err := cluster.New(cluster.Spec{Name: "unreachable", Node: &sys})
	require.NoError(t, err)
	startWithin(t, n, 3*time.Second)
}

// TestStartShortContext: a context shorter than protoactor's own start
// (which sleeps a second) still bounds Start.
func TestStartShortContext(t *testing.T) {
	sys := runtime.Spec{Env: "test", Redis: &redis.Config{URL: "redis://" + deadAddr(t) + "/0"}}
	n, err := cluster.New(cluster.Spec{Name: "short", Node: &sys})
	require.NoError(t, err)
	startWithin(t, n, 200*time.Millisecond)
}

func TestStartUnreachableSeeds(t *testing.T) {
	n, err := cluster.New(cluster.Spec{Name: "unreachable", Seeds: []string{deadAddr(t), deadAddr(t)}})
	require.NoError(t, err)
	startWithin(t, n, 3*time.Second)
}

func TestStartBindTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n, err := cluster.New(cluster.Spec{Bind: "127.0.0.1:" + strconv.Itoa(port), Seeds: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	err = n.Start(t.Context())
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "a taken port is an error, not a panic")
}
