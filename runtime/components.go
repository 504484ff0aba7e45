package runtime

import (
	"context"
	"io"
	"sync"

	"github.com/baton-go/baton/internal/nodeaccess"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

// DefaultConfigName is the config namespace Node.Config serves.
const DefaultConfigName = "default"

// SettingsConfigName is the config namespace holding Baton's own component
// settings (see the package documentation): kept apart from application
// configuration so listing one never shows the other.
const SettingsConfigName = "baton"

func (n *Node) closeOnStop(name string, c io.Closer) {
	n.onStop(name, func(context.Context) error { return c.Close() })
}

func (n *Node) startConfig(context.Context) error {
	backend := n.backendOf(backends.ComponentConfig)
	open := func(name string) (backends.ConfigCenter, error) {
		opts := backends.ConfigOptions{Namespace: n.ns, Name: name, MaxValueSize: n.cfg.Components.MaxValueSize}
		if backend == backends.BackendRedis {
			return redis.NewConfigCenter(n.redisConn, opts)
		}
		return etcd.NewConfigCenter(n.etcdConn, opts)
	}
	center, err := open(DefaultConfigName)
	if err != nil {
		return err
	}
	n.closeOnStop("config center", center)
	pid, err := n.spawn("baton-config", components.NewConfigActorProps(components.ConfigActorConfig{
		Center: center, Name: DefaultConfigName, Open: open, Backend: backend,
		Supervisor: n.supervisor, OpTimeout: n.cfg.Components.OpTimeout, Logger: n.log,
	}))
	if err != nil {
		return err
	}
	n.configPID = pid
	n.config = newConfigClient(n.system.Root, pid, DefaultConfigName)
	n.closeOnStop("config facade", n.config)
	n.onStop("config namespace facades", func(context.Context) error {
		// Stop steps run with n.mu held.
		for _, c := range n.configs {
			_ = c.Close()
		}
		n.configs = map[string]*ConfigClient{}
		return nil
	})
	return nil
}

func (n *Node) startDiscovery(context.Context) error {
	backend := n.backendOf(backends.ComponentDiscovery)
	pid, err := n.spawn("baton-discovery", components.NewDiscoveryActorProps(components.DiscoveryActorConfig{
		NewDiscovery: func(opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
			if backend == backends.BackendRedis {
				return redis.NewDiscovery(n.redisConn, opts)
			}
			return etcd.NewDiscovery(n.etcdConn, opts)
		},
		Options:    backends.DiscoveryOptions{Namespace: n.ns},
		Backend:    backend,
		Supervisor: n.supervisor, OpTimeout: n.cfg.Components.OpTimeout,
		DefaultTTL: n.cfg.Components.RegistrationTTL, Logger: n.log,
	}))
	if err != nil {
		return err
	}
	n.discoveryPID = pid
	n.discovery = newDiscoveryClient(n.system.Root, pid, backends.DiscoveryOptions{
		Namespace: n.ns, OnRegistration: n.onRegistration,
	})
	n.closeOnStop("discovery facade", n.discovery)
	return nil
}

// onRegistration logs a registration's loss or restoration and passes it
// to the observer of WithRegistrationObserver.
func (n *Node) onRegistration(ev backends.RegistrationEvent) {
	if ev.State == backends.RegistrationLost {
		n.log.Warn("baton: registration lost; restoring", "service", ev.ServiceID, "err", ev.Err)
	} else {
		n.log.Info("baton: registration restored", "service", ev.ServiceID)
	}
	if f := n.opts.registrationObserver; f != nil {
		f(ev)
	}
}

func (n *Node) startLock(context.Context) error {
	backend := n.backendOf(backends.ComponentLock)
	var (
		locker backends.Locker
		err    error
	)
	opts := backends.LockerOptions{Namespace: n.ns}
	if backend == backends.BackendRedis {
		locker, err = redis.NewLocker(n.redisConn, opts)
	} else {
		locker, err = etcd.NewLocker(n.etcdConn, opts)
	}
	if err != nil {
		return err
	}
	n.closeOnStop("locker", locker)
	pid, err := n.spawn("baton-lock", components.NewLockActorProps(components.LockActorConfig{
		Locker: locker, Backend: backend, Supervisor: n.supervisor,
		OpTimeout: n.cfg.Components.OpTimeout, DefaultTTL: n.cfg.Components.LockTTL,
		HandoffLimit: n.cfg.Components.LockHandoffLimit, Owner: n.cfg.NodeID, Logger: n.log,
	}))
	if err != nil {
		return err
	}
	n.lockPID = pid
	n.locks = newLockClient(n.system.Root, pid, nodeaccess.ClientOptions{Logger: n.log})
	n.closeOnStop("lock facade", n.locks)
	return nil
}

// startElection starts the election actor. Elections use the lock
// component's backend (Spec.Backends.Lock).
func (n *Node) startElection(context.Context) error {
	backend := n.backendOf(backends.ComponentLock)
	var (
		elector backends.Elector
		err     error
	)
	opts := backends.ElectorOptions{Namespace: n.ns, TTL: n.cfg.Components.ElectionTTL}
	if backend == backends.BackendRedis {
		elector, err = redis.NewElector(n.redisConn, opts)
	} else {
		elector, err = etcd.NewElector(n.etcdConn, opts)
	}
	if err != nil {
		return err
	}
	n.closeOnStop("elector", elector)
	pid, err := n.spawn("baton-election", components.NewElectionActorProps(components.ElectionActorConfig{
		Elector: elector, Backend: backend, Supervisor: n.supervisor,
		OpTimeout: n.cfg.Components.OpTimeout, Logger: n.log,
	}))
	if err != nil {
		return err
	}
	n.electionPID = pid
	n.election = newElectionClient(n.system.Root, pid, nodeaccess.ClientOptions{Logger: n.log})
	n.closeOnStop("election facade", n.election)
	return nil
}

// stoppedRoot is the root context of an actor system that is already shut
// down: facades handed out before Start are bound to it, so their calls
// answer ErrClosed instead of panicking.
var stoppedRoot = sync.OnceValue(func() *actor.RootContext {
	sys := actors.NewSystem(nil)
	sys.Shutdown()
	return sys.Root
})

// running returns the node's root when it is running, else stoppedRoot.
func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == stateRunning
}

// Locks returns the lock facade (backends.Locker). Leases carry fencing
// tokens; waiters on this node are granted in arrival order. The facade is
// shared by every caller and owned by the node: do not Close it (that
// would release every caller's leases); Stop releases what is still held.
// Before Start and after Stop its calls return ErrClosed.
func (n *Node) Locks() *LockClient {
	if !n.running() {
		return newLockClient(stoppedRoot(), nil, nodeaccess.ClientOptions{})
	}
	return n.locks
}

// Election returns the leader-election facade (backends.Elector). It is
// shared by every caller and owned by the node: do not Close it; Stop
// resigns what is still held. Before Start and after Stop its calls return
// ErrClosed.
func (n *Node) Election() *ElectionClient {
	if !n.running() {
		return newElectionClient(stoppedRoot(), nil, nodeaccess.ClientOptions{})
	}
	return n.election
}

// Discovery returns the service-discovery facade
// (backends.ServiceDiscovery). It is shared by every caller and owned by
// the node: do not Close it; Stop deregisters what was registered through
// it (a backend that is gone lets the registrations expire by TTL). Loss
// and restoration of its registrations go to WithRegistrationObserver.
// Before Start and after Stop its calls return ErrClosed.
func (n *Node) Discovery() *DiscoveryClient {
	if !n.running() {
		return newDiscoveryClient(stoppedRoot(), nil, backends.DiscoveryOptions{})
	}
	return n.discovery
}

// Config returns the facade of the "default" config namespace
// (backends.ConfigCenter plus Resolve). It is shared by every caller and
// owned by the node: do not Close it; Stop ends its watches. Before Start
// and after Stop its calls return ErrClosed.
func (n *Node) Config() *ConfigClient {
	if !n.running() {
		return newConfigClient(stoppedRoot(), nil, DefaultConfigName)
	}
	return n.config
}

// ConfigWith returns the facade of another config namespace of this node
// (opts.Name; "" is DefaultConfigName), served by the same actor. A
// standalone node serves only its own key namespace and limits: a
// Namespace other than Namespace(), a MaxValueSize or a HistoryLimit is
// ErrInvalidArgument (a cluster node's ConfigWith takes them). Every call
// for a name returns the same facade, shared and owned by the node like
// Config's: do not Close it.
func (n *Node) ConfigWith(opts backends.ConfigOptions) (*ConfigClient, error) {
	name := opts.Name
	if name == "" {
		name = DefaultConfigName
	}
	if err := backends.ValidateName("config name", name); err != nil {
		return nil, err
	}
	if opts.Namespace != (backends.Namespace{}) && opts.Namespace.WithDefaults() != n.ns.WithDefaults() {
		return nil, backends.Invalid("namespace", opts.Namespace.Root+"/"+opts.Namespace.Env, "a standalone node serves only its own namespace")
	}
	if opts.MaxValueSize != 0 || opts.HistoryLimit != 0 {
		return nil, backends.Invalid("config options", name, "a standalone node's limits come from its Spec")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateRunning {
		return newConfigClient(stoppedRoot(), nil, name), nil
	}
	if name == DefaultConfigName {
		return n.config, nil
	}
	if c := n.configs[name]; c != nil {
		return c, nil
	}
	c := newConfigClient(n.system.Root, n.configPID, name)
	n.configs[name] = c
	return c, nil
}

// ComponentPIDs are the node's actors, for actor code that messages them
// directly with the types of package messages: blocking with
// actors.Request, or from inside an actor with actors.RequestAsync or
// ctx.Request (the reply then arrives in Receive).
type ComponentPIDs struct {
	// Connectors is the connector supervisor (connectorv1 messages).
	Connectors *actor.PID
	// Cache serves cachev1 requests for every cache name.
	Cache *actor.PID
	// Lock serves lockv1 requests.
	Lock *actor.PID
	// Election serves electionv1 requests.
	Election *actor.PID
	// Discovery serves discoveryv1 requests.
	Discovery *actor.PID
	// Config serves configv1 requests for every config namespace.
	Config *actor.PID
}

// PIDs is the way to address the node's component actors. It returns them
// while the node runs, and the zero ComponentPIDs (every field nil) before
// Start and after Stop: a request to a nil PID fails with ErrUnavailable,
// never reaching an actor that is gone.
func (n *Node) PIDs() ComponentPIDs {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateRunning {
		return ComponentPIDs{}
	}
	return ComponentPIDs{Connectors: n.supervisor, Cache: n.cachePID, Lock: n.lockPID, Election: n.electionPID,
		Discovery: n.discoveryPID, Config: n.configPID}
}
