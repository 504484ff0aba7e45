package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/conformance"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime/cluster"
)

// clientNode starts a client-only cluster node in the test process,
// learning the cluster from seed. It is the only cluster node of this
// process: a second one would start remoting again, which replaces gRPC's
// global logger while the first one's gRPC runs (a data race in
// protoactor-go's remote.Start).
func clientNode(t *testing.T, name string, seeds ...string) *cluster.Node {
	t.Helper()
	n, err := cluster.New(cluster.Spec{Name: name, Seeds: seeds, Env: "test", NodeID: "test-client"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, n.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, n.Stop(ctx))
	})
	return n
}

// TestClusterConformance runs the cache, lock and config conformance
// suites against a client-only node — no backend of its own — whose
// components are the grains of three member processes on Redis
// (implementation name "cluster").
func TestClusterConformance(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 3, "-redis", srv.URL())
	client := clientNode(t, clusterName(t), procs[0].addr)
	_, err := client.WaitMembers(t.Context(), func(ms []cluster.Member) bool { return len(ms) == 3 })
	require.NoError(t, err)

	// The components that are not grains come from a member's actors
	// (first: the conformance fault cases restart the server at the end).
	t.Run("discovery-and-election-through-a-member", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		d := client.Discovery()
		svc := backends.ServiceInfo{ID: "client-svc-1", Name: "client-svc", Address: "127.0.0.1:9"}
		require.NoError(t, d.Register(ctx, svc, 0))
		list, err := d.Discover(ctx, "client-svc")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, svc.Address, list[0].Address)
		require.NoError(t, d.Deregister(ctx, svc.ID))

		e := client.Election()
		lead, err := e.Campaign(ctx, "client-election", "the-client")
		require.NoError(t, err)
		info, err := e.Leader(ctx, "client-election")
		require.NoError(t, err)
		require.Equal(t, "the-client", info.Value)
		require.Equal(t, lead.Epoch(), info.Epoch)
		require.NoError(t, lead.Resign(ctx))
	})

	conformance.Run(t, conformance.Target{
		Name:   "cluster",
		Server: redisServer{srv},
		NewCache: func(t *testing.T, opts backends.CacheOptions) backends.Cache {
			c, err := client.CacheWith(opts)
			require.NoError(t, err)
			return c
		},
		NewLocker: func(t *testing.T, opts backends.LockerOptions) (backends.Locker, conformance.Crash) {
			l, err := client.LocksWith(opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = l.Close() })
			return l, l.Abandon
		},
		NewConfig: func(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter {
			c, err := client.ConfigWith(opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			return c
		},
	})

}
