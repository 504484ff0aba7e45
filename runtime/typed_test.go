package runtime_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/typed"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// TestTypedGetOrLoadThroughTheNode: typed.Cache[T] over the node's cache facade
// loads through the facade's GetOrLoad — one loader for concurrent
// callers, and a cached miss with NegativeTTL.
func TestTypedGetOrLoadThroughTheNode(t *testing.T) {
	e := harness.StartEtcd(t)
	node := startNode(t, runtime.Spec{Env: "test", Etcd: etcdConfig(e)})
	ctx := ctxFor(t, 30*time.Second)
	type report struct{ Rows int }
	reports := typed.New[report](node.Cache("reports"), nil)

	var loads atomic.Int32
	release := make(chan struct{})
	loader := func(context.Context) (report, error) {
		loads.Add(1)
		<-release // hold the load so that every caller finds it under way
		return report{Rows: 42}, nil
	}
	var wg sync.WaitGroup
	results := make(chan report, 8)
	for range 8 {
		wg.Go(func() {
			r, err := reports.GetOrLoad(ctx, "daily", backends.LoadOptions{TTL: time.Minute}, loader)
			assert.NoError(t, err)
			results <- r
		})
	}
	require.Eventually(t, func() bool { return loads.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		assert.Equal(t, 42, r.Rows)
	}
	assert.EqualValues(t, 1, loads.Load(), "one load for all callers")

	misses := 0
	missing := func(context.Context) (report, error) {
		misses++
		return report{}, backends.ErrNotFound
	}
	for range 3 {
		_, err := reports.GetOrLoad(ctx, "absent", backends.LoadOptions{NegativeTTL: time.Minute}, missing)
		require.ErrorIs(t, err, backends.ErrNotFound)
	}
	assert.Equal(t, 1, misses, "the miss is cached")
}
