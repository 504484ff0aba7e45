package components_test

import (
	"context"
	"testing"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/components"
)

// BenchmarkCacheActorGet measures Gets through the cache actor's facade
// with b.RunParallel callers (-cpu sets their number); it is a profiling
// aid — the side-by-side comparison lives in integration/bench.
func BenchmarkCacheActorGet(b *testing.B) {
	srv := startServer(b, backends.BackendRedis)
	sys := newSystem(b)
	pid, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{NewCache: srv.newCache, Backend: "redis"}), "cache")
	require.NoError(b, err)
	cache := nodeaccess.NewCacheClient(sys.Root, pid, "bench", nil).(*runtime.CacheClient)
	ctx := context.Background()
	require.NoError(b, cache.Set(ctx, "k", []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), 0))
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cache.Get(ctx, "k"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
