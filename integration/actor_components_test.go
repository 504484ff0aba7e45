package integration

import (
	"testing"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/baton-go/baton/internal/components"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/conformance"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

func init() {
	addActorTargets = func(target *conformance.Target, connect func(t *testing.T) backends.Connector) {
		target.NewLocker = func(t *testing.T, opts backends.LockerOptions) (backends.Locker, conformance.Crash) {
			conn := connect(t)
			n := newActorNode(t, conn)
			bl, err := newBackendLocker(conn, opts)
			bl = component(t, bl, err)
			pid := n.spawn(t, "locks", components.NewLockActorProps(components.LockActorConfig{
				Locker: bl, Backend: conn.Backend(), Supervisor: n.supervisor,
			}))
			cl := nodeaccess.NewLockClient(n.sys.Root, pid, nodeaccess.ClientOptions{}).(*runtime.LockClient)
			t.Cleanup(func() { _ = cl.Close() })
			return cl, n.crash
		}
		target.NewElector = func(t *testing.T, opts backends.ElectorOptions) (backends.Elector, conformance.Crash) {
			conn := connect(t)
			n := newActorNode(t, conn)
			be, err := newBackendElector(conn, opts)
			be = component(t, be, err)
			pid := n.spawn(t, "elections", components.NewElectionActorProps(components.ElectionActorConfig{
				Elector: be, Backend: conn.Backend(), Supervisor: n.supervisor,
			}))
			cl := nodeaccess.NewElectionClient(n.sys.Root, pid, nodeaccess.ClientOptions{}).(*runtime.ElectionClient)
			t.Cleanup(func() { _ = cl.Close() })
			return cl, n.crash
		}
		target.NewDiscovery = func(t *testing.T, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, conformance.Crash) {
			conn := connect(t)
			n := newActorNode(t, conn)
			// The registration hook belongs to the facade; the actor
			// forwards loss/restoration reports to it.
			actorOpts := opts
			actorOpts.OnRegistration = nil
			pid := n.spawn(t, "discovery", components.NewDiscoveryActorProps(components.DiscoveryActorConfig{
				NewDiscovery: func(o backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
					return newBackendDiscovery(conn, o)
				},
				Options: actorOpts, Backend: conn.Backend(), Supervisor: n.supervisor,
			}))
			cl := nodeaccess.NewDiscoveryClient(n.sys.Root, pid, opts).(*runtime.DiscoveryClient)
			t.Cleanup(func() { _ = cl.Close() })
			return cl, n.crash
		}
		target.NewConfig = func(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter {
			conn := connect(t)
			n := newActorNode(t, conn)
			cc, err := newBackendConfig(conn, opts)
			cc = component(t, cc, err)
			pid := n.spawn(t, "config", components.NewConfigActorProps(components.ConfigActorConfig{
				Center: cc, Name: opts.Name, Backend: conn.Backend(), Supervisor: n.supervisor,
			}))
			cl := nodeaccess.NewConfigClient(n.sys.Root, pid, opts.Name).(*runtime.ConfigClient)
			t.Cleanup(func() { _ = cl.Close() })
			return cl
		}
	}
}

func newBackendDiscovery(conn backends.Connector, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
	switch c := conn.(type) {
	case *redis.Connector:
		return redis.NewDiscovery(c, opts)
	case *etcd.Connector:
		return etcd.NewDiscovery(c, opts)
	}
	return nil, backends.ErrNotSupported
}

func newBackendConfig(conn backends.Connector, opts backends.ConfigOptions) (backends.ConfigCenter, error) {
	switch c := conn.(type) {
	case *redis.Connector:
		return redis.NewConfigCenter(c, opts)
	case *etcd.Connector:
		return etcd.NewConfigCenter(c, opts)
	}
	return nil, backends.ErrNotSupported
}

func newBackendLocker(conn backends.Connector, opts backends.LockerOptions) (backends.Locker, error) {
	switch c := conn.(type) {
	case *redis.Connector:
		return redis.NewLocker(c, opts)
	case *etcd.Connector:
		return etcd.NewLocker(c, opts)
	}
	return nil, backends.ErrNotSupported
}

func newBackendElector(conn backends.Connector, opts backends.ElectorOptions) (backends.Elector, error) {
	switch c := conn.(type) {
	case *redis.Connector:
		return redis.NewElector(c, opts)
	case *etcd.Connector:
		return etcd.NewElector(c, opts)
	}
	return nil, backends.ErrNotSupported
}
