package runtime_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// TestRedisEndpointByServiceName: the Redis endpoint is given as a service
// name, resolved through discovery on etcd, and followed when the
// registration moves to another server.
func TestRedisEndpointByServiceName(t *testing.T) {
	e := harness.StartEtcd(t)
	first, second := harness.StartRedis(t), harness.StartRedis(t)
	ctx := ctxFor(t, 60*time.Second)

	// An operator's process registers where Redis lives.
	conn, err := etcd.NewConnector(*etcdConfig(e), nil)
	require.NoError(t, err)
	require.NoError(t, conn.Connect(ctx))
	t.Cleanup(func() { _ = conn.Disconnect(context.Background()) })
	registry, err := etcd.NewDiscovery(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = registry.Close() })
	require.NoError(t, registry.Register(ctx, backends.ServiceInfo{ID: "redis-main", Name: "redis", Address: first.Addr()}, 5*time.Second))

	node := startNode(t, runtime.Spec{
		Env: "test", Etcd: etcdConfig(e), RedisService: "redis",
		Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "etcd", Config: "etcd"},
	})
	cache := node.Cache("follow")
	require.NoError(t, cache.Set(ctx, "where", []byte("first"), 0))
	assert.Equal(t, 1, keysOn(t, first.Addr()), "the first server holds the data")

	// The registration moves: the node reconnects to the second server.
	require.NoError(t, registry.Register(ctx, backends.ServiceInfo{ID: "redis-main", Name: "redis", Address: second.Addr()}, 5*time.Second))
	require.Eventually(t, func() bool {
		return cache.Set(ctx, "where", []byte("second"), 0) == nil && keysOn(t, second.Addr()) == 1
	}, 15*time.Second, 50*time.Millisecond)
	lease, err := node.Locks().TryAcquire(ctx, "moved", backends.LockOptions{TTL: 5 * time.Second})
	require.NoError(t, err, "locks follow the endpoint too")
	require.NoError(t, lease.Release(ctx))
}

func keysOn(t *testing.T, addr string) int {
	t.Helper()
	cli := goredis.NewClient(&goredis.Options{Addr: addr})
	defer func() { _ = cli.Close() }()
	keys, err := cli.Keys(context.Background(), "baton/test/cache/follow/*").Result()
	require.NoError(t, err)
	return len(keys)
}

func TestRedisServiceNeedsDiscoveryOnEtcd(t *testing.T) {
	err := runtime.Spec{Env: "test", RedisService: "redis"}.Validate()
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "redis_service")
}
