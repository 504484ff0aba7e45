package components_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/components"
)

// TestCacheAutoPipelining: 64 concurrent callers through one cache actor
// cost about one backend round trip per batch, not one each.
func TestCacheAutoPipelining(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			srv := startServer(t, backend)
			sys := newSystem(t)
			pid, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{
				NewCache: srv.newCache, Backend: backend,
			}), "cache")
			require.NoError(t, err)
			cache := nodeaccess.NewCacheClient(sys.Root, pid, "pipeline", nil).(*runtime.CacheClient)
			ctx := ctxTimeout(t, 60*time.Second)

			const callers, rounds = 64, 50
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range rounds {
						key := fmt.Sprintf("k%d", (c*rounds+r)%200)
						if err := cache.Set(ctx, key, []byte(key), 0); err != nil {
							errs <- err
							return
						}
						v, err := cache.Get(ctx, key)
						if err != nil {
							errs <- err
							return
						}
						if len(v) == 0 {
							errs <- fmt.Errorf("empty value for %s", key)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			// Workers answer callers before they report the batch to the
			// actor, so the counters catch up a moment after the last answer.
			var batches, ops, maxBatch uint64
			require.Eventually(t, func() bool {
				batches, ops, maxBatch, err = cache.Stats(ctx)
				return err == nil && ops == uint64(callers*rounds*2)
			}, 5*time.Second, 5*time.Millisecond)
			mean := float64(ops) / float64(batches)
			t.Logf("%s: %d ops in %d batches: mean batch %.1f, max %d", backend, ops, batches, mean, maxBatch)
			assert.Greater(t, mean, 8.0, "mean batch size with 64 callers")
			require.NoError(t, stopPID(sys, pid))
		})
	}
}
