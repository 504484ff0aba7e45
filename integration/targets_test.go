package integration

import (
	"context"
	"io"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/conformance"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
)

// targetBuilder builds one conformance target. build runs inside the
// target's own subtest, so a target filtered out by -run starts no server.
type targetBuilder struct {
	name  string
	build func(t *testing.T) conformance.Target
}

// targetBuilders lists the implementations TestConformance runs, in order.
// Other files of this package add theirs from init (the actor facades, the
// cluster) with registerTarget.
var targetBuilders []targetBuilder

// registerTarget adds an implementation to TestConformance.
func registerTarget(name string, build func(t *testing.T) conformance.Target) {
	targetBuilders = append(targetBuilders, targetBuilder{name: name, build: build})
}

func init() {
	registerTarget(backends.BackendRedis, redisTarget)
	registerTarget(backends.BackendEtcd, etcdTarget)
}

// setupTimeout bounds connecting and disconnecting a test's connector.
const setupTimeout = 10 * time.Second

// component registers the cleanup of a freshly built component: its Close.
// Cleanups run in reverse, so the component closes (releasing what it
// holds) before its connector disconnects.
func component[T io.Closer](t *testing.T, c T, err error) T {
	t.Helper()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// crash simulates the death of the process owning c: its connector goes
// away first, so the Close that follows cannot release anything; what c held
// must expire by TTL.
func crash(conn backends.Connector, c io.Closer) conformance.Crash {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		_ = conn.Disconnect(ctx)
		_ = c.Close()
	}
}

// connected connects conn and disconnects it when t ends.
func connected[C backends.Connector](t *testing.T, conn C, err error) C {
	t.Helper()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	require.NoError(t, conn.Connect(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		_ = conn.Disconnect(ctx)
	})
	return conn
}

// redisTarget is backends/redis against one redis-server. Every component
// gets its own connector, as a separate process would.
func redisTarget(t *testing.T) conformance.Target {
	srv := harness.StartRedis(t)
	connect := func(t *testing.T) *redis.Connector {
		t.Helper()
		conn, err := redis.NewConnector(redis.Config{URL: srv.URL()}, nil)
		return connected(t, conn, err)
	}
	return conformance.Target{
		Name:   backends.BackendRedis,
		Server: redisServer{srv},
		// Its leases are backends.Handoffer: run the hand-off cases too.
		LockHandoff: true,
		LockAdopt:   true,
		NewCache: func(t *testing.T, opts backends.CacheOptions) backends.Cache {
			c, err := redis.NewCache(connect(t), opts)
			return component(t, c, err)
		},
		NewLocker: func(t *testing.T, opts backends.LockerOptions) (backends.Locker, conformance.Crash) {
			conn := connect(t)
			l, err := redis.NewLocker(conn, opts)
			l = component(t, l, err)
			return l, crash(conn, l)
		},
		NewElector: func(t *testing.T, opts backends.ElectorOptions) (backends.Elector, conformance.Crash) {
			conn := connect(t)
			e, err := redis.NewElector(conn, opts)
			e = component(t, e, err)
			return e, crash(conn, e)
		},
		NewDiscovery: func(t *testing.T, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, conformance.Crash) {
			conn := connect(t)
			d, err := redis.NewDiscovery(conn, opts)
			d = component(t, d, err)
			return d, crash(conn, d)
		},
		NewConfig: func(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter {
			c, err := redis.NewConfigCenter(connect(t), opts)
			return component(t, c, err)
		},
	}
}

// etcdTarget is backends/etcd against an etcd server in its own process, so
// that fault cases can kill it.
func etcdTarget(t *testing.T) conformance.Target {
	srv := harness.StartEtcdProcess(t)
	connect := func(t *testing.T) *etcd.Connector {
		t.Helper()
		conn, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
		return connected(t, conn, err)
	}
	return conformance.Target{
		Name:   backends.BackendEtcd,
		Server: etcdServer{srv},
		// Its leases are backends.Handoffer: run the hand-off cases too.
		LockHandoff: true,
		LockAdopt:   true,
		NewCache: func(t *testing.T, opts backends.CacheOptions) backends.Cache {
			c, err := etcd.NewCache(connect(t), opts)
			return component(t, c, err)
		},
		NewLocker: func(t *testing.T, opts backends.LockerOptions) (backends.Locker, conformance.Crash) {
			conn := connect(t)
			l, err := etcd.NewLocker(conn, opts)
			l = component(t, l, err)
			return l, crash(conn, l)
		},
		NewElector: func(t *testing.T, opts backends.ElectorOptions) (backends.Elector, conformance.Crash) {
			conn := connect(t)
			e, err := etcd.NewElector(conn, opts)
			e = component(t, e, err)
			return e, crash(conn, e)
		},
		NewDiscovery: func(t *testing.T, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, conformance.Crash) {
			conn := connect(t)
			d, err := etcd.NewDiscovery(conn, opts)
			d = component(t, d, err)
			return d, crash(conn, d)
		},
		NewConfig: func(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter {
			c, err := etcd.NewConfigCenter(connect(t), opts)
			return component(t, c, err)
		},
	}
}

// redisServer adapts the harness Redis to conformance.Server. The test
// server has no persistence, so every restart is empty.
type redisServer struct{ *harness.Redis }

func (s redisServer) RestartEmpty() { s.Restart() }

// ForceGap trims every stream of the database to nothing: the change logs
// that discovery and config watches resume from lose their history.
func (s redisServer) ForceGap(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	cli := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer func() { _ = cli.Close() }()
	var cursor uint64
	for {
		keys, next, err := cli.ScanType(ctx, cursor, "*", 1000, "stream").Result()
		require.NoError(t, err, "scan streams")
		for _, k := range keys {
			require.NoError(t, cli.XTrimMaxLen(ctx, k, 0).Err(), "trim stream %q", k)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// etcdServer adapts the harness Etcd to conformance.Server.
type etcdServer struct{ *harness.Etcd }

func (s etcdServer) RestartEmpty() {
	s.Wipe()
	s.Start()
}

// ForceGap compacts the history to the current revision.
func (s etcdServer) ForceGap(t *testing.T) {
	t.Helper()
	s.CompactNow(t)
}
