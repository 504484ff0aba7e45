package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/embedded"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// startNode starts a node and stops it (checking the error) when t ends.
func startNode(t *testing.T, cfg runtime.Spec, opts ...runtime.Option) *runtime.Node {
	t.Helper()
	node, err := runtime.New(cfg, opts...)
	require.NoError(t, err)
	require.NoError(t, node.Start(ctxFor(t, 30*time.Second)))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })
	return node
}

func redisConfig(r *harness.Redis) *redis.Config {
	c := redis.DefaultConfig()
	c.Addrs = []string{r.Addr()}
	return &c
}

func etcdConfig(e *harness.Etcd) *etcd.Config {
	c := etcd.DefaultConfig()
	c.Endpoints = e.Endpoints()
	return &c
}

// TestNodeLifecycle starts and stops a node with each backend mix and checks
// every component answers, Stop is final and nothing is left running
// (goleak in TestMain).
func TestNodeLifecycle(t *testing.T) {
	r := harness.StartRedis(t)
	e := harness.StartEtcd(t)
	mixes := map[string]runtime.Spec{
		"embedded":  {},
		"all-redis": {Redis: redisConfig(r)},
		"all-etcd":  {Etcd: etcdConfig(e)},
		"mixed": {Redis: redisConfig(r), Etcd: etcdConfig(e),
			Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "etcd", Config: "etcd"}},
	}
	for name, cfg := range mixes {
		t.Run(name, func(t *testing.T) {
			cfg.Env = "test"
			cfg.NodeID = "lifecycle-" + name
			node, err := runtime.New(cfg, embedded.Option())
			require.NoError(t, err)
			ctx := ctxFor(t, 30*time.Second)
			require.NoError(t, node.Start(ctx))

			health, err := node.Health(ctx)
			require.NoError(t, err)
			require.NotEmpty(t, health)
			for _, h := range health {
				assert.Equal(t, "up", h.State, "%s", h.Backend)
			}
			exerciseNode(t, ctx, node)

			require.NoError(t, node.Stop(context.Background()))
			require.NoError(t, node.Stop(context.Background()), "a second Stop")
			_, err = node.Cache("c").Get(context.Background(), "k")
			require.ErrorIs(t, err, backends.ErrClosed, "a facade after Stop")
			_, err = node.Locks().TryAcquire(context.Background(), "x", backends.LockOptions{})
			require.ErrorIs(t, err, backends.ErrClosed, "locks after Stop")
			_, err = node.Config().Get(context.Background(), "k")
			require.ErrorIs(t, err, backends.ErrClosed, "config after Stop")
			require.ErrorIs(t, node.Start(context.Background()), backends.ErrClosed, "Start after Stop")
		})
	}
}

// exerciseNode touches every component the node serves.
func exerciseNode(t *testing.T, ctx context.Context, node *runtime.Node) {
	t.Helper()
	cache := node.Cache("lifecycle")
	require.NoError(t, cache.Set(ctx, "k", []byte("v"), 0))
	v, err := cache.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)

	lease, err := node.Locks().Acquire(ctx, "lifecycle", backends.LockOptions{TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.NotZero(t, lease.Token())
	// A lock that is held: the error names the lock once, with one
	// prefix and the sentinel once.
	_, err = node.Locks().TryAcquire(ctx, "lifecycle", backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotObtained)
	assert.Equal(t, 1, strings.Count(err.Error(), `"lifecycle"`), "the lock is named once: %v", err)
	assert.Equal(t, 1, strings.Count(err.Error(), backends.ErrNotObtained.Error()), "one sentinel: %v", err)
	assert.NotContains(t, err.Error(), "runtime:", "no facade prefix on the actor's answer: %v", err)
	require.NoError(t, lease.Release(ctx))

	lead, err := node.Election().Campaign(ctx, "lifecycle", "me")
	require.NoError(t, err)
	info, err := node.Election().Leader(ctx, "lifecycle")
	require.NoError(t, err)
	assert.Equal(t, "me", info.Value)
	require.NoError(t, lead.Resign(ctx))

	svc := backends.ServiceInfo{ID: "api-1", Name: "api", Address: "127.0.0.1:8080"}
	require.NoError(t, node.Discovery().Register(ctx, svc, 5*time.Second))
	found, err := node.Discovery().Discover(ctx, "api")
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.NoError(t, node.Discovery().Deregister(ctx, "api-1"))

	require.NoError(t, node.Config().Set(ctx, "feature/x", "on"))
	got, err := node.Config().Get(ctx, "feature/x")
	require.NoError(t, err)
	assert.Equal(t, "on", got)
}

func TestNodeStartFailsFastWhenBackendIsDown(t *testing.T) {
	r := harness.StartRedis(t)
	addr := r.Addr()
	r.Stop()
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{addr}
	node, err := runtime.New(runtime.Spec{Env: "test", Redis: &cfg})
	require.NoError(t, err)
	start := time.Now()
	err = node.Start(ctxFor(t, 3*time.Second))
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), 4*time.Second)
	require.NoError(t, node.Stop(context.Background()), "Stop after a failed Start")
}

func TestNewWithoutBackendNeedsEmbeddedOption(t *testing.T) {
	_, err := runtime.New(runtime.Spec{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "embedded.Option()")
}

// TestEmbeddedAlongsideRedis: one YAML file puts cache and locks on Redis
// and discovery and config on the embedded etcd.
func TestEmbeddedAlongsideRedis(t *testing.T) {
	r := harness.StartRedis(t)
	path := filepath.Join(t.TempDir(), "baton.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
env: test
backends:
  cache: redis
  lock: redis
  discovery: etcd
  config: etcd
redis:
  url: `+r.URL()+`
embedded:
  enabled: true
`), 0o600))
	cfg, err := runtime.LoadSpec(path)
	require.NoError(t, err)
	require.True(t, cfg.UsesEmbedded())
	node := startNode(t, cfg, embedded.Option())
	assert.Equal(t, "redis", nodeaccess.Of(node).Backend(backends.ComponentCache))
	assert.Equal(t, "redis", nodeaccess.Of(node).Backend(backends.ComponentLock))
	assert.Equal(t, "etcd", nodeaccess.Of(node).Backend(backends.ComponentDiscovery))
	assert.Equal(t, "etcd", nodeaccess.Of(node).Backend(backends.ComponentConfig))
	assert.NotEmpty(t, node.Spec().Etcd.Endpoints, "the embedded server's endpoints")
	exerciseNode(t, ctxFor(t, 30*time.Second), node)
	backendsSeen := map[string]bool{}
	health, err := node.Health(ctxFor(t, 10*time.Second))
	require.NoError(t, err)
	for _, h := range health {
		backendsSeen[h.Backend] = h.State == "up"
	}
	assert.Equal(t, map[string]bool{"redis": true, "etcd": true}, backendsSeen)
	cli := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer func() { _ = cli.Close() }()
	keys, err := cli.Keys(t.Context(), "baton/test/cache/lifecycle/*").Result()
	require.NoError(t, err)
	assert.NotEmpty(t, keys, "the cache wrote to Redis")
}
