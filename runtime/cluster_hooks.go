package runtime

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

// The accessors below let package runtime/cluster host grains on a node:
// a grain opens its own backend component (for the namespace it serves) on
// the node's shared connectors, behind the node's connector gate. They
// return nil / zero values before Start; read them after Start returned.

// RedisConnector returns the node's Redis connector, nil when no component
// uses Redis.
func (n *Node) RedisConnector() *redis.Connector {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.redisConn
}

// EtcdConnector returns the node's etcd connector, nil when no component
// uses etcd.
func (n *Node) EtcdConnector() *etcd.Connector {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.etcdConn
}

// ConnectorSupervisor returns the PID of the node's connector supervisor,
// which component actors follow to fail fast while a backend is down.
func (n *Node) ConnectorSupervisor() *actor.PID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.supervisor
}

// Namespace returns the key namespace (root and env) of the node.
func (n *Node) Namespace() backends.Namespace { return n.ns }

// ComponentBackend returns "redis" or "etcd": the backend serving component
// (backends.ComponentCache, ComponentLock, …) on this node.
func (n *Node) ComponentBackend(component string) string { return n.backendOf(component) }

// CachePID returns PIDs().Cache.
//
// Deprecated: use PIDs, the one way to address every component actor.
func (n *Node) CachePID() *actor.PID { return n.PIDs().Cache }

// DiscoveryPID returns PIDs().Discovery.
//
// Deprecated: use PIDs, the one way to address every component actor.
func (n *Node) DiscoveryPID() *actor.PID { return n.PIDs().Discovery }
