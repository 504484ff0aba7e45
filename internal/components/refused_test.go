package components_test

import (
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/internal/components"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// TestRefusedSettingsAreNotRetriedFast: the server starts refusing the
// connector's password (it was rotated). Callers get ErrUnauthenticated at
// once, not ErrUnavailable; the supervisor tries again only every
// RefusedRetry instead of on its fast probe schedule; once the server
// accepts the password again the same actors serve again.
func TestRefusedSettingsAreNotRetriedFast(t *testing.T) {
	const refusedRetry = 400 * time.Millisecond
	srv := harness.StartRedis(t, harness.WithRedisPassword("secret"))
	cfg := redis.DefaultConfig()
	cfg.Addrs, cfg.Password = []string{srv.Addr()}, "secret"
	conn, err := redis.NewConnector(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, conn.Connect(t.Context()))
	t.Cleanup(func() { _ = conn.Disconnect(t.Context()) })
	ns := backends.Namespace{Env: "test"}

	sys := newSystem(t)
	sup, err := sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
		Connectors:     []backends.Connector{conn},
		HealthInterval: 50 * time.Millisecond,
		ConnectTimeout: time.Second,
		Backoff:        components.Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond},
		RefusedRetry:   refusedRetry,
	}), "connectors")
	require.NoError(t, err)
	states := stateRecorder(t, sys, sup)
	cachePID, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{
		NewCache: func(name string) (backends.Cache, error) {
			return redis.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: name})
		},
		Backend: backends.BackendRedis, Supervisor: sup, OpTimeout: time.Second,
	}), "cache")
	require.NoError(t, err)
	cache := nodeaccess.NewCacheClient(sys.Root, cachePID, "refused", nil).(*runtime.CacheClient)
	require.NoError(t, cache.Set(ctxTimeout(t, time.Second), "k", []byte("v"), 0))

	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Password: "secret", MaxRetries: -1})
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.ConfigSet(t.Context(), "requirepass", "rotated").Err())
	// Drop every connection, so that the connector has to authenticate
	// again (the admin connection goes too; its next command redials).
	_ = admin.Do(t.Context(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no").Err()

	require.Eventually(t, func() bool {
		_, err := cache.Get(ctxTimeout(t, time.Second), "k")
		return errors.Is(err, backends.ErrUnauthenticated)
	}, 5*time.Second, 20*time.Millisecond, "callers learn that the password is refused")
	began := time.Now()
	_, err = cache.Get(ctxTimeout(t, 5*time.Second), "k")
	require.ErrorIs(t, err, backends.ErrUnauthenticated)
	assert.NotErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(began), 200*time.Millisecond, "answered at once, not after a wait")
	t.Logf("refused: %v", err)

	// Refused attempts come RefusedRetry apart, not on the 20–50ms probe
	// schedule.
	var refused []time.Time
	require.Eventually(t, func() bool {
		for {
			select {
			case s := <-states:
				if s.GetState() == connectorv1.State_STATE_DOWN {
					if s.GetCause().GetCode() != statusv1.Code_CODE_UNAUTHENTICATED {
						continue // the broken connection was seen first
					}
					assert.Equal(t, refusedRetry, s.GetNextRetry().AsDuration())
					refused = append(refused, time.Now())
				}
			default:
				return len(refused) >= 3
			}
		}
	}, 10*time.Second, 10*time.Millisecond)
	for i := 1; i < len(refused); i++ {
		assert.GreaterOrEqual(t, refused[i].Sub(refused[i-1]), refusedRetry*3/4, "attempt %d came too soon", i+1)
	}

	// The server accepts the password again: service resumes.
	admin2 := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Password: "rotated", MaxRetries: -1})
	t.Cleanup(func() { _ = admin2.Close() })
	require.NoError(t, admin2.ConfigSet(t.Context(), "requirepass", "secret").Err())
	require.Eventually(t, func() bool {
		_, err := cache.Get(ctxTimeout(t, time.Second), "k")
		return err == nil
	}, 5*refusedRetry, 20*time.Millisecond, "a fixed password is picked up without a restart")

	require.NoError(t, stopPID(sys, cachePID))
	require.NoError(t, stopPID(sys, sup))
}
