package runtime

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/nodeaccess"
)

// Namespace returns the key namespace (root and env) of the node.
func (n *Node) Namespace() backends.Namespace { return n.ns }

// internals are what runtime/cluster needs of a node to host grains on it.
func (n *Node) internals() nodeaccess.Internals {
	n.mu.Lock()
	defer n.mu.Unlock()
	return nodeaccess.Internals{Redis: n.redisConn, Etcd: n.etcdConn, Supervisor: n.supervisor, Backend: n.backendOf}
}

func init() {
	nodeaccess.WithEmbeddedEtcd = func(start nodeaccess.EmbeddedStarter) any {
		return Option(func(o *nodeOptions) { o.embedded = start })
	}
	nodeaccess.Of = func(node any) nodeaccess.Internals { return node.(*Node).internals() }
	nodeaccess.NewCacheClient = func(root *actor.RootContext, pid *actor.PID, name string, locker backends.Locker) backends.Cache {
		return newCacheClient(root, pid, name, locker)
	}
	nodeaccess.NewConfigClient = func(root *actor.RootContext, pid *actor.PID, name string) backends.ConfigCenter {
		return newConfigClient(root, pid, name)
	}
	nodeaccess.NewDiscoveryClient = func(root *actor.RootContext, pid *actor.PID, opts backends.DiscoveryOptions) backends.ServiceDiscovery {
		return newDiscoveryClient(root, pid, opts)
	}
	nodeaccess.NewLockClient = func(root *actor.RootContext, pid *actor.PID, opts nodeaccess.ClientOptions) backends.Locker {
		return newLockClient(root, pid, opts)
	}
	nodeaccess.NewElectionClient = func(root *actor.RootContext, pid *actor.PID, opts nodeaccess.ClientOptions) backends.Elector {
		return newElectionClient(root, pid, opts)
	}
}
