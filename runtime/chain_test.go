package runtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// TestHotReloadCacheTTL: a TTL setting written to the config center reaches
// the running cache actor; an invalid value is rejected and the old one
// kept; the most specific layer wins.
func TestHotReloadCacheTTL(t *testing.T) {
	for _, backend := range []string{"redis", "etcd"} {
		t.Run(backend, func(t *testing.T) {
			cfg := runtime.Spec{Env: "test", NodeID: "reload-1"}
			if backend == "redis" {
				cfg.Redis = redisConfig(harness.StartRedis(t))
			} else {
				cfg.Etcd = etcdConfig(harness.StartEtcd(t))
			}
			var (
				mu     sync.Mutex
				events []runtime.SettingsEvent
			)
			node := startNode(t, cfg, runtime.WithSettingsObserver(func(e runtime.SettingsEvent) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}))
			ctx := ctxFor(t, 60*time.Second)
			settings, err := node.ConfigWith(backends.ConfigOptions{Name: runtime.SettingsConfigName})
			require.NoError(t, err)
			assert.Zero(t, node.Settings().CacheDefaultTTL, "no expiry by default")

			// Component layer: every node's cache gets a 2s default TTL.
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerComponent, "cache", "", "default_ttl"), "2s"))
			require.Eventually(t, func() bool { return node.Settings().CacheDefaultTTL == 2*time.Second },
				10*time.Second, 10*time.Millisecond)
			cache := node.Cache("reload")
			require.NoError(t, cache.Set(ctx, "k", []byte("v"), 0))
			require.Eventually(t, func() bool {
				ok, err := cache.Exists(ctx, "k")
				return err == nil && !ok
			}, 10*time.Second, 50*time.Millisecond, "a Set without TTL now expires")

			// An invalid value is rejected; the old one stays.
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerSystem, "cache", "", "default_ttl"), "1s"))
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerComponent, "cache", "", "default_ttl"), "banana"))
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range events {
					if e.Setting == "default_ttl" && e.Value == "banana" {
						return errors.Is(e.Err, backends.ErrInvalidArgument)
					}
				}
				return false
			}, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, 2*time.Second, node.Settings().CacheDefaultTTL, "old value kept")

			// The instance layer wins over the component layer.
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerInstance, "cache", "reload-1", "default_ttl"), "30s"))
			require.Eventually(t, func() bool { return node.Settings().CacheDefaultTTL == 30*time.Second },
				10*time.Second, 10*time.Millisecond)
			// Lock and discovery settings too.
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerSystem, "", "", "ttl"), "7s"))
			require.NoError(t, settings.Set(ctx, runtime.SettingsKey(backends.LayerComponent, "lock", "", "ttl"), "9s"))
			require.Eventually(t, func() bool { return node.Settings().LockTTL == 9*time.Second },
				10*time.Second, 10*time.Millisecond)
			lease, err := node.Locks().Acquire(ctx, "reload", backends.LockOptions{})
			require.NoError(t, err)
			assert.Equal(t, 9*time.Second, lease.TTL(), "the lock actor uses the reloaded default TTL")
			require.NoError(t, lease.Release(ctx))
		})
	}
}

// TestGetOrLoadAcrossNodes: 50 concurrent callers on two nodes run the
// loader once — single-flight inside each node, the lock across them.
func TestGetOrLoadAcrossNodes(t *testing.T) {
	for _, backend := range []string{"redis", "etcd"} {
		t.Run(backend, func(t *testing.T) {
			cfg := runtime.Spec{Env: "test"}
			if backend == "redis" {
				cfg.Redis = redisConfig(harness.StartRedis(t))
			} else {
				cfg.Etcd = etcdConfig(harness.StartEtcd(t))
			}
			a, b := cfg, cfg
			a.NodeID, b.NodeID = "load-a", "load-b"
			nodes := []*runtime.Node{startNode(t, a), startNode(t, b)}
			ctx := ctxFor(t, 60*time.Second)

			var loads atomic.Int64
			loader := func(context.Context) ([]byte, error) {
				loads.Add(1)
				time.Sleep(100 * time.Millisecond) // a slow origin, so callers overlap
				return []byte("expensive"), nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := nodes[i%2].Cache("origin").GetOrLoad(ctx, "report", backends.LoadOptions{TTL: time.Minute, Jitter: 0.1}, loader)
					if err == nil && string(v) != "expensive" {
						err = errors.New("wrong value " + string(v))
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			assert.Equal(t, int64(1), loads.Load(), "the loader ran once across both nodes")

			// Negative caching: a miss is remembered.
			var misses atomic.Int64
			missing := func(context.Context) ([]byte, error) {
				misses.Add(1)
				return nil, backends.ErrNotFound
			}
			for range 3 {
				_, err := nodes[0].Cache("origin").GetOrLoad(ctx, "absent", backends.LoadOptions{NegativeTTL: time.Minute}, missing)
				require.ErrorIs(t, err, backends.ErrNotFound)
			}
			assert.Equal(t, int64(1), misses.Load(), "the miss was cached")
		})
	}
}
