package integration

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/conformance"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
)

// The actor facades are conformance targets too: the same cases, through
// the component actors, must give the same results as the direct backends.
func init() {
	registerTarget("actor-redis", func(t *testing.T) conformance.Target {
		srv := harness.StartRedis(t)
		return actorTarget(t, "actor-redis", redisServer{srv}, func(t *testing.T) backends.Connector {
			conn, err := redis.NewConnector(redis.Config{URL: srv.URL()}, nil)
			return connected(t, conn, err)
		})
	})
	registerTarget("actor-etcd", func(t *testing.T) conformance.Target {
		srv := harness.StartEtcdProcess(t)
		return actorTarget(t, "actor-etcd", etcdServer{srv}, func(t *testing.T) backends.Connector {
			conn, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
			return connected(t, conn, err)
		})
	})
}

// actorNode is what one "process" of an actor target runs: an actor system,
// a connector supervisor over its own connector, and component actors.
type actorNode struct {
	sys        *actor.ActorSystem
	conn       backends.Connector
	supervisor *actor.PID
}

func newActorNode(t *testing.T, conn backends.Connector) *actorNode {
	t.Helper()
	sys := actors.NewSystem(nil)
	n := &actorNode{sys: sys, conn: conn}
	sup, err := sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
		Connectors: []backends.Connector{conn}, HealthInterval: 200 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		Backoff: components.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
	}), "connectors")
	require.NoError(t, err)
	n.supervisor = sup
	// Registered after the connector's own cleanup, so it runs first: the
	// actors stop (and release what they hold) while the connector is up.
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(sup).Wait()
		sys.Shutdown()
	})
	return n
}

// spawn starts a component actor that stops when t ends.
func (n *actorNode) spawn(t *testing.T, name string, props *actor.Props) *actor.PID {
	t.Helper()
	pid, err := n.sys.Root.SpawnNamed(props, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.sys.Root.StopFuture(pid).Wait() })
	return pid
}

// crashActors simulates the death of an actor node: the connector goes
// first, so nothing can be released on the way down.
func (n *actorNode) crash() {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	_ = n.conn.Disconnect(ctx)
	_ = n.sys.Root.StopFuture(n.supervisor).Wait()
}

func actorTarget(t *testing.T, name string, server conformance.Server, connect func(t *testing.T) backends.Connector) conformance.Target {
	target := conformance.Target{Name: name, Server: server}
	target.NewCache = func(t *testing.T, opts backends.CacheOptions) backends.Cache {
		conn := connect(t)
		n := newActorNode(t, conn)
		pid := n.spawn(t, "cache", components.NewCacheActorProps(components.CacheActorConfig{
			NewCache: func(cacheName string) (backends.Cache, error) {
				o := opts
				o.Name = cacheName
				return newBackendCache(conn, o)
			},
			Backend: conn.Backend(), Supervisor: n.supervisor,
		}))
		return nodeaccess.NewCacheClient(n.sys.Root, pid, opts.Name, nil)
	}
	addActorTargets(&target, connect)
	return target
}

// addActorTargets wires the other component actors as their facades land;
// see actor_components_test.go.
var addActorTargets = func(*conformance.Target, func(t *testing.T) backends.Connector) {}

func newBackendCache(conn backends.Connector, opts backends.CacheOptions) (backends.Cache, error) {
	switch c := conn.(type) {
	case *redis.Connector:
		return redis.NewCache(c, opts)
	case *etcd.Connector:
		return etcd.NewCache(c, opts)
	}
	return nil, backends.ErrNotSupported
}
