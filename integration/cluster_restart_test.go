package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
)

// TestClusterBackendRestart: the backend restarts with an empty store, so
// every member's registration is gone. Each member restores it by itself
// (no restart of its own), the cluster keeps its three members throughout
// (they answer pings while unregistered), and locking across the nodes
// works afterwards.
func TestClusterBackendRestart(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		srv := harness.StartRedis(t)
		procs := clusterOf(t, 3, "-redis", srv.URL())
		conn, err := redis.NewConnector(redis.Config{URL: srv.URL()}, nil)
		conn = connected(t, conn, err)
		disc, err := redis.NewDiscovery(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}})
		disc = component(t, disc, err)
		restartAndRejoin(t, procs, srv.Restart, disc, srv.URL())
	})
	t.Run("etcd", func(t *testing.T) {
		srv := harness.StartEtcdProcess(t)
		rs := harness.StartRedis(t) // the shared state of the contention check
		procs := clusterOf(t, 3, "-etcd", strings.Join(srv.Endpoints(), ","))
		conn, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
		conn = connected(t, conn, err)
		disc, err := etcd.NewDiscovery(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}})
		disc = component(t, disc, err)
		restartAndRejoin(t, procs, func() { srv.Wipe(); srv.Start() }, disc, rs.URL())
	})
}

func restartAndRejoin(t *testing.T, procs []*clusterProc, restart func(), disc backends.ServiceDiscovery, redisURL string) {
	t.Helper()
	name := clusterName(t)
	registered := func() int {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		list, err := disc.Discover(ctx, name)
		if err != nil {
			return -1
		}
		return len(list)
	}
	require.Eventually(t, func() bool { return registered() == 3 }, 10*time.Second, 50*time.Millisecond)
	marks := make([]int, len(procs))
	for i, p := range procs {
		marks[i] = p.mark()
	}
	restart()
	for i, p := range procs {
		p.await(marks[i], "registration lost", 30*time.Second)
		p.await(marks[i], "registration restored", 30*time.Second)
	}
	require.Eventually(t, func() bool { return registered() == 3 }, 30*time.Second, 50*time.Millisecond,
		"every member is registered again")
	for i, p := range procs {
		for _, l := range p.linesFrom(marks[i], "members ") {
			require.True(t, strings.HasPrefix(l, "members 3 "), "%s: the membership changed during the restart: %q", p.name, l)
		}
	}
	waitMembers(t, procs, 3, 10*time.Second)
	// Each node's connector comes back on its own schedule (capped
	// exponential backoff), and fails fast until then; locking across the
	// nodes works again once they are all up.
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 1; ; attempt++ {
		grants, _, failed := contend(t, procs, redisURL, fmt.Sprintf("after-restart-%d", attempt), 2, 3, 60*time.Second)
		if len(failed) == 0 {
			require.Len(t, grants, 3*2*3)
			return
		}
		t.Logf("attempt %d: %d failed acquisitions, e.g. %s", attempt, len(failed), failed[0])
		require.True(t, time.Now().Before(deadline), "locking across the nodes still fails after the restart")
	}
}
