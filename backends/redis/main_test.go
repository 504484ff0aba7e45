package redis

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

// kitConnect returns a connected Connector for r, disconnected at cleanup.
func kitConnect(t testing.TB, cfg Config) *Connector {
	t.Helper()
	c, err := NewConnector(cfg, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// kitRedis starts a standalone server and a connector on it.
func kitRedis(t testing.TB) (*harness.Redis, *Connector) {
	t.Helper()
	r := harness.StartRedis(t)
	return r, kitConnect(t, Config{URL: r.URL()})
}

// kitNS is a namespace private to the running test.
func kitNS(t testing.TB, env string) backends.Namespace {
	return backends.Namespace{Root: "t" + strings.ReplaceAll(t.Name(), "/", "_"), Env: env}
}

// kitCluster starts a three-master Redis Cluster (slots split evenly) and
// returns its addresses once every node reports cluster_state:ok.
func kitCluster(t testing.TB) []string {
	t.Helper()
	const n = 3
	addrs := make([]string, n)
	clients := make([]*goredis.Client, n)
	for i := range n {
		r := harness.StartRedis(t, harness.WithRedisArgs(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		))
		addrs[i] = r.Addr()
		clients[i] = goredis.NewClient(&goredis.Options{Addr: r.Addr(), Protocol: 2})
		cl := clients[i]
		t.Cleanup(func() { _ = cl.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	per := 16384 / n
	for i, cl := range clients {
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = 16383
		}
		require.NoError(t, cl.ClusterAddSlotsRange(ctx, lo, hi).Err())
		if i > 0 {
			host, port, err := net.SplitHostPort(addrs[0])
			require.NoError(t, err)
			require.NoError(t, cl.ClusterMeet(ctx, host, port).Err())
		}
	}
	require.Eventually(t, func() bool {
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "cluster did not become ok")
	return addrs
}
