package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/runtime"
)

// Names of the runtime's component actors on every member, used by
// client-only nodes for the components that are not grains.
const (
	electionActorName = "baton-election"
)

// Node is one node of a Baton cluster: a member (with a backend, hosting
// grains) or a client-only node (no backend; it uses the members).
//
//	n, err := cluster.New(cluster.Spec{Name: "jobs", Node: &sysCfg})
//	if err != nil { … }
//	if err := n.Start(ctx); err != nil { … }
//	defer n.Stop(context.Background())
//	lease, err := n.Locks().Acquire(ctx, "nightly-report", backends.LockOptions{})
//
// Start is called once; Stop any number of times (later calls return nil).
// After Stop every facade answers ErrClosed.
type Node struct {
	cfg  Spec
	opts options
	log  *slog.Logger

	mu      sync.Mutex
	state   int
	started bool          // the protoactor cluster was started
	cleaned chan struct{} // closed when a failed Start has stopped what it started
	// lateStart is closed when a protoactor start that outlived Start's
	// context has been undone.
	lateStart chan struct{}

	system   *actor.ActorSystem
	cl       *cluster.Cluster
	rt       *runtime.Node
	host     *host
	provider *provider
	resolver *resolver
	gate     *streamGate
	stalls   *stallWatch
	disc     *runtime.DiscoveryClient // the member's registration
	nodeID   string
	ns       backends.Namespace
	address  string

	locks     *LockClient
	scoped    map[string]*LockClient // the lock facades of other namespaces, for their caches' GetOrLoad
	proxies   map[string]*actor.PID
	caches    map[string]*runtime.CacheClient
	configs   map[string]*runtime.ConfigClient
	discovery *runtime.DiscoveryClient // client-only: through a member
	election  *runtime.ElectionClient  // client-only: through a member
	closers   []io.Closer
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New validates cfg and returns a node that is not started.
func New(cfg Spec, opts ...Option) (*Node, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, scoped: map[string]*LockClient{}, proxies: map[string]*actor.PID{},
		caches: map[string]*runtime.CacheClient{}, configs: map[string]*runtime.ConfigClient{}}
	for _, o := range opts {
		o(&n.opts)
	}
	n.log = n.opts.logger
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if cfg.ClientOnly() {
		n.nodeID, n.ns = cfg.NodeID, backends.Namespace{Root: cfg.Root, Env: cfg.Env}
	} else {
		sc := cfg.Node.WithDefaults()
		n.nodeID, n.ns = sc.NodeID, backends.Namespace{Root: sc.Root, Env: sc.Env}
	}
	return n, nil
}

// Start joins the cluster within ctx: remoting first (before any gRPC
// client of the node exists — see the package documentation), then, for a
// member, the runtime node and its registration; then the membership
// watch. A backend or seed that cannot be reached fails Start with
// ErrUnavailable when ctx ends; everything started is stopped again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	if n.state != stateNew {
		n.mu.Unlock()
		if n.state == stateStopped {
			return fmt.Errorf("cluster: start: %w", backends.ErrClosed)
		}
		return fmt.Errorf("cluster: already started: %w", backends.ErrInvalidArgument)
	}
	n.state = stateRunning
	n.mu.Unlock()
	defer func() {
		if err == nil {
			return
		}
		done := make(chan struct{})
		n.mu.Lock()
		n.state, n.cleaned = stateStopped, done
		n.mu.Unlock()
		cleanup := func() {
			defer close(done)
			_ = n.teardown(context.WithoutCancel(ctx))
		}
		if ctx.Err() == nil {
			cleanup()
			return
		}
		// The error is due now. Stopping what was started can take
		// protoactor a few seconds (an endpoint writer that failed to
		// connect sleeps 2s before it can stop); it goes on in the
		// background, and Stop waits for it.
		go cleanup()
	}()
	return n.start(ctx)
}

func (n *Node) start(ctx context.Context) error {
	bindHost, port, advertise, err := n.listenAddress()
	if err != nil {
		return err
	}
	noise := newPeerNoise(n.log.Handler())
	n.system = actors.NewSystem(slog.New(noise))
	// Members ping each other's actor systems with a Touch (see
	// membership.ping) to this actor; protoactor answers a Touch itself
	// and the actor ignores it.
	if _, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), pingActorName); err != nil {
		return backends.Unavailable("cluster: ping actor", err)
	}
	n.gate = &streamGate{}
	n.resolver = newResolver(n.system.Root, n.cfg.ResolveTimeout)
	n.host = &host{log: n.log, idle: n.cfg.GrainIdleTimeout}
	n.provider = newProvider(providerConfig{
		Name: n.cfg.Name, TTL: n.cfg.MemberTTL, ProbeInterval: n.cfg.ProbeInterval,
		PingTimeout: n.cfg.PingTimeout, MaxAbsence: n.cfg.MaxAbsence, SuspectAfter: n.cfg.SuspectAfter, NodeID: n.nodeID,
		OnTopology: n.onTopology, Logger: n.log,
	})
	n.provider.gate = n.gate
	noise.members.Store(n.provider)
	var copts []cluster.ConfigOption
	if !n.cfg.ClientOnly() {
		copts = append(copts, cluster.WithKinds(n.host.kinds()...))
	}
	cc := cluster.Configure(n.cfg.Name, n.provider, disthash.New(), remoteConfig(bindHost, port, advertise, n.log, n.gate), copts...)
	// Gossip stays idle. Membership is the provider's business (gossip
	// heartbeats would block members on their own, and protoactor blocks
	// for good), nothing of Baton reads gossip state, and protoactor-go's
	// gossip has data races at the pinned version: the gossip loop reads
	// the BlockList without its lock (remote/blocklist.go IsBlocked), the
	// gossip actor mutates state maps it has just handed to the endpoint
	// writer for serialization (cluster/gossip_state_management.go), and
	// answers GossipRequests reading MemberList.members without its lock
	// (cluster/member_list.go ContainsMemberID). StartMember always starts
	// the gossiper; a loop that never ticks sends and reads nothing.
	cc.GossipInterval = 100 * 365 * 24 * time.Hour
	cc.HeartbeatExpiration = cc.GossipInterval
	n.cl = cluster.New(n.system, cc)
	if err := n.startCluster(ctx); err != nil {
		return err
	}
	n.address = n.system.Address()

	if n.cfg.ClientOnly() {
		dial := func(addr string) backends.ServiceDiscovery {
			return newRuntimeDiscoveryClient(n.system.Root, pidOf(addr, discoveryActorName), backends.DiscoveryOptions{})
		}
		if err := n.provider.JoinSeeds(ctx, n.cfg.Seeds, dial); err != nil {
			return err
		}
	} else {
		ropts := append([]runtime.Option{runtime.WithActorSystem(n.system), runtime.WithLogger(n.log)}, n.opts.runtime...)
		rt, err := runtime.New(*n.cfg.Node, ropts...)
		if err != nil {
			return err
		}
		n.rt = rt
		if err := rt.Start(ctx); err != nil {
			return err
		}
		n.host.setRuntime(rt)
		n.disc = newRuntimeDiscoveryClient(n.system.Root, rt.PIDs().Discovery, backends.DiscoveryOptions{
			OnRegistration: n.onRegistration,
		})
		if err := n.provider.Join(ctx, n.disc); err != nil {
			return err
		}
		n.stalls = watchStalls(n.cfg.SuspectAfter, func(gap time.Duration) {
			reset := n.host.resetLockGrains(n.system.Root)
			n.log.Info("baton: cluster member did not run for a while; its lock grains start afresh", "stalled", gap, "grains", reset)
		})
	}
	locks, err := newLocks(n, n.ns)
	if err != nil {
		return err
	}
	n.locks = locks
	return nil
}

// listenAddress picks the bind host and port (a free one for port 0) and
// the advertised address.
func (n *Node) listenAddress() (host string, port int, advertise string, err error) {
	host, port, err = splitHostPort("cluster.bind", n.cfg.Bind, false)
	if err != nil {
		return "", 0, "", err
	}
	// Listening once here turns a taken port into an error (remote.Start
	// would panic) and resolves port 0 before the address is advertised.
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return "", 0, "", backends.Invalid("cluster.bind", n.cfg.Bind, err.Error())
	}
	port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	advertise = net.JoinHostPort(host, strconv.Itoa(port))
	if n.cfg.Advertise != "" {
		ah, ap, _ := splitHostPort("cluster.advertise", n.cfg.Advertise, true)
		if ap == 0 {
			ap = port
		}
		advertise = net.JoinHostPort(ah, strconv.Itoa(ap))
	}
	return host, port, advertise, nil
}

// startCluster runs protoactor's StartMember/StartClient, which panic on
// failure and sleep a second, bounded by ctx.
func (n *Node) startCluster(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- backends.Unavailable("cluster: start remoting", fmt.Errorf("%v", r))
			}
		}()
		if n.cfg.ClientOnly() {
			n.cl.StartClient()
		} else {
			n.cl.StartMember()
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err == nil {
			n.mu.Lock()
			n.started = true
			n.mu.Unlock()
		}
		return err
	case <-ctx.Done():
		// Let the start finish in the background, then undo it; the
		// clean-up of the failed Start waits for that.
		sys, late := n.system, make(chan struct{})
		go func() {
			defer close(late)
			if <-done == nil {
				n.stopCluster(sys)
			}
			sys.Shutdown()
		}()
		n.system, n.lateStart = nil, late // teardown must not shut it down under the start
		return backends.Unavailable("cluster: start remoting", ctx.Err())
	}
}

func (n *Node) onRegistration(ev backends.RegistrationEvent) {
	n.log.Info("baton: cluster registration", "service", ev.ServiceID, "state", ev.State, "err", ev.Err)
	if h := n.opts.onRegistration; h != nil {
		h(ev)
	}
}

func (n *Node) onTopology(ms []Member) {
	n.resolver.setMembers(ms)
	n.mu.Lock()
	proxies := make([]*actor.PID, 0, len(n.proxies))
	for _, p := range n.proxies {
		proxies = append(proxies, p)
	}
	n.mu.Unlock()
	for _, p := range proxies {
		n.system.Root.Send(p, &proxyReset{})
	}
}

// Stop leaves the cluster and stops everything Start started, in reverse
// order: the membership (deregistering), the facades, the grains (which
// release what they hold while the backend is still connected), the
// runtime node, remoting and the actor system. Errors are joined.
//
// Stop is idempotent: later calls, and a call before Start, return nil
// (Start then returns ErrClosed). After a Start that failed when its
// context ended, Stop waits (within ctx) until Start's clean-up is done.
//
// A backend that cannot be reached does not fail Stop: the member's
// registration then expires with its TTL (Config.MemberTTL), and what
// could not be undone is logged at warning level.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	if n.state != stateRunning {
		cleaned := n.cleaned
		n.state = stateStopped
		n.mu.Unlock()
		if cleaned != nil { // a failed Start is still cleaning up
			select {
			case <-cleaned:
			case <-ctx.Done():
			}
		}
		return nil
	}
	n.state = stateStopped
	n.mu.Unlock()
	return n.teardown(ctx)
}

func (n *Node) teardown(ctx context.Context) error {
	if n.lateStart != nil {
		<-n.lateStart
	}
	n.stalls.close()
	var errs []error
	if n.provider != nil {
		if err := n.provider.Leave(ctx); err != nil {
			if backendGone(ctx, err) {
				n.log.Warn("baton: cluster stop: backend unreachable; the member's registration expires with its TTL",
					"cluster", n.cfg.Name, "member_ttl", n.cfg.MemberTTL, "err", err)
			} else {
				errs = append(errs, err)
			}
		}
	}
	n.mu.Lock()
	closers := n.closers
	n.closers = nil
	var locks []*LockClient
	if n.locks != nil {
		locks = append(locks, n.locks)
	}
	scoped := n.scoped
	n.scoped = map[string]*LockClient{}
	proxies := n.proxies
	n.proxies = map[string]*actor.PID{}
	disc := n.disc
	n.mu.Unlock()
	for _, l := range scoped {
		locks = append(locks, l)
	}
	for _, l := range locks {
		_ = l.Close()
	}
	for _, c := range closers {
		_ = c.Close()
	}
	if disc != nil {
		_ = disc.Close()
	}
	if n.system != nil {
		for _, p := range proxies {
			_ = n.system.Root.StopFuture(p).Wait()
		}
	}
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	if started {
		n.stopGrains()
	}
	if n.rt != nil {
		if err := n.rt.Stop(ctx); err != nil && !errors.Is(err, backends.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if n.host != nil {
		n.host.closeLockers()
	}
	if started {
		n.stopRemote(n.system)
	}
	if n.system != nil {
		n.system.Shutdown()
	}
	return errors.Join(errs...)
}

// backendGone reports whether a stop step failed only because the backend
// did not answer: unreachable, or a bound of the step's own ran out while
// the caller's ctx still had time.
func backendGone(ctx context.Context, err error) bool {
	if errors.Is(err, backends.ErrUnavailable) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// stopGrains stops placement (and with it every grain of this member) and
// gossip, while the backends are still connected.
func (n *Node) stopGrains() {
	n.cl.IdentityLookup.Shutdown()
	n.cl.Gossip.Shutdown()
}

// stopCluster undoes a StartMember/StartClient that completed after Start
// gave up.
func (n *Node) stopCluster(sys *actor.ActorSystem) {
	n.stopGrains()
	n.stopRemote(sys)
}

// stopRemote stops remoting without protoactor's graceful path, whose
// flags (the endpoint manager's stopped, the endpoint reader's suspended)
// are plain fields written while every sender and every connection's
// goroutine reads them — data races at the pinned version. Instead: no
// incoming message is handled any more (the gate), the endpoint actors
// stop (each writer closes its connection to its peer, which the peer
// notices at once), and the gRPC server stops.
func (n *Node) stopRemote(sys *actor.ActorSystem) {
	n.gate.close()
	root, addr := sys.Root, sys.Address()
	for _, name := range []string{"EndpointSupervisor", "activator"} {
		_ = root.StopFuture(actor.NewPID(addr, name)).Wait()
	}
	n.cl.Remote.Shutdown(false)
}

// running returns an error unless the node runs.
func (n *Node) running(op string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateRunning || n.locks == nil {
		return fmt.Errorf("cluster: %s: node not running: %w", op, backends.ErrClosed)
	}
	return nil
}

// Address returns the node's remoting address (host:port).
func (n *Node) Address() string { return n.address }

// ClientOnly reports whether the node has no backend.
func (n *Node) ClientOnly() bool { return n.cfg.ClientOnly() }

// Namespace returns the key namespace of the node's own facades.
func (n *Node) Namespace() backends.Namespace { return n.ns.WithDefaults() }

// Members returns the cluster members as this node sees them.
func (n *Node) Members() []Member {
	if n.provider == nil {
		return nil
	}
	return n.provider.Members()
}

// MembersChanged returns a channel closed at the next change of the member
// list (Members). Nil before Start.
func (n *Node) MembersChanged() <-chan struct{} {
	if n.provider == nil {
		return nil
	}
	return n.provider.Changed()
}

// WaitMembers waits until the member list satisfies ok, or ctx ends, and
// returns it.
func (n *Node) WaitMembers(ctx context.Context, ok func([]Member) bool) ([]Member, error) {
	if n.provider == nil {
		return nil, fmt.Errorf("cluster: wait members: node not started: %w", backends.ErrClosed)
	}
	return n.provider.WaitMembers(ctx, ok)
}

// Cluster returns the protoactor cluster (nil before Start).
func (n *Node) Cluster() *cluster.Cluster { return n.cl }

// ActorSystem returns the node's actor system (nil before Start).
func (n *Node) ActorSystem() *actor.ActorSystem { return n.system }

// Runtime returns a member's runtime node; nil on a client-only node.
func (n *Node) Runtime() *runtime.Node { return n.rt }

// Locks returns the cluster lock facade of the node's namespace. Before
// Start and after Stop its calls return ErrClosed.
func (n *Node) Locks() *LockClient {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.locks == nil {
		return &LockClient{n: n, closed: true}
	}
	return n.locks
}

// locksIn returns the shared lock facade of ns, for the caches of that
// namespace.
func (n *Node) locksIn(ns backends.Namespace) (*LockClient, error) {
	ns = ns.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	if err := n.running("locks"); err != nil {
		return nil, err
	}
	key := ns.Root + "/" + ns.Env
	n.mu.Lock()
	defer n.mu.Unlock()
	if key == n.ns.WithDefaults().Root+"/"+n.ns.WithDefaults().Env {
		return n.locks, nil
	}
	if l := n.scoped[key]; l != nil {
		return l, nil
	}
	l, err := newLocks(n, ns)
	if err != nil {
		return nil, err
	}
	n.scoped[key] = l
	return l, nil
}

// LocksWith returns a new lock facade for opts.Namespace (the node's when
// zero), independent of the node's others: the grains see it as a process
// of its own, and its Close releases only its leases. Stop closes it if the
// caller did not.
func (n *Node) LocksWith(opts backends.LockerOptions) (*LockClient, error) {
	ns := opts.Namespace
	if ns == (backends.Namespace{}) {
		ns = n.ns
	}
	ns = ns.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	if err := n.running("locks"); err != nil {
		return nil, err
	}
	l, err := newLocks(n, ns)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.closers = append(n.closers, l)
	n.mu.Unlock()
	return l, nil
}

// Cache returns the facade of a named cache of the node's namespace. On a
// member it is served by the member's own cache actor; on a client-only
// node by the cache's grain. GetOrLoad is exclusive across the cluster
// (through the lock grains). Before Start and after Stop its calls return
// ErrClosed.
func (n *Node) Cache(name string) *runtime.CacheClient {
	if n.rt == nil {
		c, err := n.CacheWith(backends.CacheOptions{Namespace: n.ns, Name: name})
		if err != nil {
			return newRuntimeCacheClient(nil, nil, name, nil)
		}
		return c
	}
	if n.running("cache") != nil {
		return newRuntimeCacheClient(nil, nil, name, nil)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	key := "local/" + name
	if c := n.caches[key]; c != nil {
		return c
	}
	c := newRuntimeCacheClient(n.system.Root, n.rt.PIDs().Cache, name, n.locks)
	n.caches[key] = c
	return c
}

// CacheWith returns the facade of the cache grain for opts (any namespace;
// MaxValueSize is capped by the members' own limit).
func (n *Node) CacheWith(opts backends.CacheOptions) (*runtime.CacheClient, error) {
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	locks, err := n.locksIn(opts.Namespace)
	if err != nil {
		return nil, err
	}
	key := KindCache + "/" + cacheIdentity(opts)
	n.mu.Lock()
	c := n.caches[key]
	n.mu.Unlock()
	if c != nil {
		return c, nil
	}
	pid, err := n.grainProxy(KindCache, cacheIdentity(opts))
	if err != nil {
		return nil, err
	}
	c = newRuntimeCacheClient(n.system.Root, pid, opts.Name, locks)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.caches[key]; old != nil {
		return old, nil
	}
	n.caches[key] = c
	return c, nil
}

// Config returns the facade of the "default" config namespace of the
// node's namespace (a member's own config actor, or a grain). Other config
// namespaces: ConfigWith.
func (n *Node) Config() *runtime.ConfigClient {
	if n.rt != nil {
		return n.rt.Config()
	}
	c, err := n.ConfigWith(backends.ConfigOptions{Namespace: n.ns, Name: runtime.DefaultConfigName})
	if err != nil {
		return newRuntimeConfigClient(nil, nil, runtime.DefaultConfigName)
	}
	return c
}

// ConfigWith returns a facade of the config grain for opts (any
// namespace). Close it when done; Stop closes the rest.
func (n *Node) ConfigWith(opts backends.ConfigOptions) (*runtime.ConfigClient, error) {
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	if err := n.running("config"); err != nil {
		return nil, err
	}
	pid, err := n.grainProxy(KindConfig, configIdentity(opts))
	if err != nil {
		return nil, err
	}
	c := newRuntimeConfigClient(n.system.Root, pid, opts.Name)
	n.mu.Lock()
	n.closers = append(n.closers, c)
	n.mu.Unlock()
	return c, nil
}

// Discovery returns the discovery facade: a member's own, or on a
// client-only node the discovery actor of a member (in that member's
// namespace).
func (n *Node) Discovery() *runtime.DiscoveryClient {
	if n.rt != nil {
		return n.rt.Discovery()
	}
	n.mu.Lock()
	d := n.discovery
	n.mu.Unlock()
	if d != nil {
		return d
	}
	pid, err := n.serviceProxy(discoveryActorName)
	if err != nil {
		return newRuntimeDiscoveryClient(nil, nil, backends.DiscoveryOptions{})
	}
	d = newRuntimeDiscoveryClient(n.system.Root, pid, backends.DiscoveryOptions{})
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.discovery != nil {
		return n.discovery
	}
	n.discovery = d
	n.closers = append(n.closers, d)
	return d
}

// Election returns the leader-election facade: a member's own, or on a
// client-only node the election actor of a member.
func (n *Node) Election() *runtime.ElectionClient {
	if n.rt != nil {
		return n.rt.Election()
	}
	n.mu.Lock()
	e := n.election
	n.mu.Unlock()
	if e != nil {
		return e
	}
	pid, err := n.serviceProxy(electionActorName)
	if err != nil {
		return newRuntimeElectionClient(nil, nil, nodeaccess.ClientOptions{})
	}
	e = newRuntimeElectionClient(n.system.Root, pid, nodeaccess.ClientOptions{Logger: n.log})
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.election != nil {
		return n.election
	}
	n.election = e
	n.closers = append(n.closers, e)
	return e
}

// grainProxy returns the proxy of a grain, spawning it on first use.
func (n *Node) grainProxy(kind, identity string) (*actor.PID, error) {
	return n.proxy(kind+"/"+identity, func(ctx context.Context) (*actor.PID, error) {
		return n.resolver.resolve(ctx, kind, identity)
	})
}

// serviceProxy returns the proxy of a runtime component actor on some
// member (chosen by rendezvous on this node's id, so a node sticks to one).
func (n *Node) serviceProxy(actorName string) (*actor.PID, error) {
	return n.proxy("service/"+actorName, func(context.Context) (*actor.PID, error) {
		addr := n.resolver.owner(KindLock, "service/"+n.nodeID)
		if addr == "" {
			return nil, backends.Unavailable("cluster: "+actorName, errors.New("no member known"))
		}
		return pidOf(addr, actorName), nil
	})
}

func (n *Node) proxy(key string, resolve func(ctx context.Context) (*actor.PID, error)) (*actor.PID, error) {
	if err := n.running("proxy"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.proxies[key]; p != nil {
		return p, nil
	}
	p, err := n.system.Root.SpawnNamed(newProxyProps(n.cfg.ResolveTimeout, resolve), "baton-cluster-proxy-"+randomID())
	if err != nil {
		return nil, backends.Unavailable("cluster: proxy", err)
	}
	n.proxies[key] = p
	return p, nil
}

// The node's facades are runtime's, bound to grain PIDs.

func newRuntimeCacheClient(root *actor.RootContext, pid *actor.PID, name string, locker backends.Locker) *runtime.CacheClient {
	return nodeaccess.NewCacheClient(root, pid, name, locker).(*runtime.CacheClient)
}

func newRuntimeConfigClient(root *actor.RootContext, pid *actor.PID, name string) *runtime.ConfigClient {
	return nodeaccess.NewConfigClient(root, pid, name).(*runtime.ConfigClient)
}

func newRuntimeDiscoveryClient(root *actor.RootContext, pid *actor.PID, opts backends.DiscoveryOptions) *runtime.DiscoveryClient {
	return nodeaccess.NewDiscoveryClient(root, pid, opts).(*runtime.DiscoveryClient)
}

func newRuntimeElectionClient(root *actor.RootContext, pid *actor.PID, opts nodeaccess.ClientOptions) *runtime.ElectionClient {
	return nodeaccess.NewElectionClient(root, pid, opts).(*runtime.ElectionClient)
}
