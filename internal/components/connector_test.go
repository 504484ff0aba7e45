package components_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/components"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

func TestBackoffDelayIsCappedExponentialWithJitter(t *testing.T) {
	b := components.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond} {
		for range 50 {
			d := b.Delay(attempt)
			assert.GreaterOrEqual(t, d, time.Duration(float64(want)*0.8), "attempt %d", attempt)
			assert.LessOrEqual(t, d, time.Duration(float64(want)*1.2), "attempt %d", attempt)
		}
	}
	for range 50 {
		assert.LessOrEqual(t, b.Delay(30), time.Second, "capped")
		assert.GreaterOrEqual(t, b.Delay(30), 800*time.Millisecond)
	}
}

// TestSupervision kills the backend server under a running cache actor:
// callers get ErrUnavailable within their deadline, the connector actor is
// restarted on a growing, capped schedule (seen in the published events),
// and once the server is back the same cache actor serves again.
func TestSupervision(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			srv := startServer(t, backend)
			sys := newSystem(t)
			sup, err := sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
				Connectors:     []backends.Connector{srv.conn},
				HealthInterval: 100 * time.Millisecond,
				ConnectTimeout: time.Second,
				Backoff:        components.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2, Jitter: 0.2},
			}), "connectors")
			require.NoError(t, err)
			states := stateRecorder(t, sys, sup)
			cachePID, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{
				NewCache: srv.newCache, Backend: backend, Supervisor: sup, OpTimeout: time.Second,
			}), "cache")
			require.NoError(t, err)
			cache := nodeaccess.NewCacheClient(sys.Root, cachePID, "sessions", nil).(*runtime.CacheClient)

			require.Eventually(t, func() bool {
				return cache.Set(ctxTimeout(t, time.Second), "k", []byte("v"), 0) == nil
			}, 10*time.Second, 20*time.Millisecond)

			srv.stop()
			// Callers get ErrUnavailable, within their own deadline.
			require.Eventually(t, func() bool {
				start := time.Now()
				_, err := cache.Get(ctxTimeout(t, time.Second), "k")
				took := time.Since(start)
				assert.Less(t, took, 1500*time.Millisecond, "answered within the caller's deadline")
				if !errors.Is(err, backends.ErrUnavailable) {
					return false
				}
				// One sentinel, one cause, once.
				assert.Equal(t, 1, strings.Count(err.Error(), backends.ErrUnavailable.Error()), "%q", err)
				assert.True(t, strings.HasPrefix(err.Error(), `cache "sessions": get "k": `+backend+": "), "%q", err)
				return true
			}, 10*time.Second, 50*time.Millisecond)

			// The connector actor is restarted on a growing schedule.
			var downs []*connectorv1.ConnectorState
			require.Eventually(t, func() bool {
				for {
					select {
					case s := <-states:
						if s.GetState() == connectorv1.State_STATE_DOWN {
							downs = append(downs, s)
						}
					default:
						return len(downs) >= 4
					}
				}
			}, 15*time.Second, 20*time.Millisecond)
			for i, d := range downs {
				t.Logf("down #%d: attempt %d, next retry in %s (%s)", i+1, d.GetAttempt(), d.GetNextRetry().AsDuration(), d.GetCause().GetCode())
				assert.LessOrEqual(t, d.GetNextRetry().AsDuration(), 400*time.Millisecond, "capped")
			}
			assert.Greater(t, downs[len(downs)-1].GetAttempt(), downs[0].GetAttempt(), "attempts counted")

			srv.start()
			require.Eventually(t, func() bool {
				_, err := cache.Get(ctxTimeout(t, time.Second), "k")
				// Redis comes back empty; etcd keeps the key.
				return err == nil || errors.Is(err, backends.ErrNotFound)
			}, 20*time.Second, 50*time.Millisecond)
			require.NoError(t, cache.Set(ctxTimeout(t, time.Second), "k2", []byte("v2"), 0))

			// The same cache actor served throughout: its counters were not
			// reset by a restart.
			batches, _, _, err := cache.Stats(ctxTimeout(t, time.Second))
			require.NoError(t, err)
			assert.GreaterOrEqual(t, batches, uint64(2))

			require.NoError(t, stopPID(sys, cachePID))
			require.NoError(t, stopPID(sys, sup))
		})
	}
}

func TestUnknownMessageGetsInvalidArgument(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{NewCache: srv.newCache, Backend: "redis"}), "cache")
	require.NoError(t, err)
	ctx := ctxTimeout(t, 5*time.Second)

	// A message type the actor does not serve.
	_, err = actors.Request[*connectorv1.StateResponse](ctx, sys.Root, pid, &connectorv1.StateRequest{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	// Not a protobuf at all.
	res, err := sys.Root.RequestFuture(pid, "hello", 5*time.Second).Result()
	require.NoError(t, err)
	st, ok := res.(*statusv1.Status)
	require.True(t, ok, "%T", res)
	require.ErrorIs(t, st.Err(), backends.ErrInvalidArgument)

	cache := nodeaccess.NewCacheClient(sys.Root, pid, "c", nil).(*runtime.CacheClient)
	// Malformed requests: bad cache name, bad key.
	_, err = nodeaccess.NewCacheClient(sys.Root, pid, "a/b", nil).Get(ctx, "k")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = cache.Get(ctx, "nul\x00key")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	// The actor keeps serving.
	require.NoError(t, cache.Set(ctx, "k", []byte("v"), 0))
	v, err := cache.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
	require.NoError(t, stopPID(sys, pid))
}

func stopPID(sys *actor.ActorSystem, pid *actor.PID) error {
	return sys.Root.StopFuture(pid).Wait()
}
