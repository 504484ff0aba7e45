package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/baton-go/baton/backends"
)

// Registration metadata keys of a member.
const (
	metaKinds  = "baton.kinds"
	metaNodeID = "baton.node_id"
)

// discoveryActorName is the runtime's discovery actor on every member; it
// serves client-only nodes' membership watches.
const discoveryActorName = "baton-discovery"

// Member is one member of the cluster as this node sees it.
type Member struct {
	// ID is the protoactor member id. It is the member's actor-system id,
	// with "#n" appended when this node re-admits a member it had removed
	// (protoactor never re-admits a member id that left).
	ID string
	// Address is host:port of its remoting.
	Address string
	// Kinds are the grain kinds it hosts.
	Kinds []string
	// NodeID is its runtime node id.
	NodeID string
}

// providerConfig configures a Provider.
type providerConfig struct {
	// Name is the service name members register under. Required.
	Name string
	// TTL of the member's registration. Default: defaultMemberTTL.
	TTL time.Duration
	// ProbeInterval, PingTimeout, MaxAbsence and SuspectAfter: see Config.
	// Defaults as there.
	ProbeInterval time.Duration
	PingTimeout   time.Duration
	MaxAbsence    time.Duration
	SuspectAfter  time.Duration
	// NodeID is published in the registration metadata.
	NodeID string
	// OnTopology, if set, is called (from the provider's goroutine, one
	// call at a time) with every new member list.
	OnTopology func([]Member)
	// Logger. Default: discard.
	Logger *slog.Logger
}

// provider is a protoactor cluster provider built on Baton's service
// discovery (backends.ServiceDiscovery, on Redis or etcd), instead of
// protoactor's own etcd provider — which hangs when etcd is down, leaks
// its client and never re-registers after its lease is lost
// (asynkron/protoactor-go#1133).
//
// A member registers itself as an instance of service Name (address,
// grain kinds) through the discovery component, whose registrations keep
// themselves alive and are restored when lost — after a backend restart
// or a healed partition the member is back without any action of its own.
// Every node follows the service with a discovery watch and feeds the
// instances into protoactor's MemberList (UpdateClusterTopology), which
// drives placement (identity lookup) and the cluster's events.
//
// Removal is deliberate, because protoactor blocks a member id for good
// once it has left the topology. Every member is pinged every
// ProbeInterval: a TCP connect to its remoting port, then a Touch answered
// by its actor system (see ping). A connect refused at once is a process
// that is gone: the member leaves the topology at once. A member that
// answers no ping for SuspectAfter — SIGSTOPped, hung, cut off
// — leaves it too, even while its registration is still alive (the kernel
// answers a bare connect for a stopped process), so its grains move to
// the others within about SuspectAfter + PingTimeout. A member missing
// from discovery stays in the topology while it answers pings (its
// registration is being restored), and is removed when a ping fails or
// after MaxAbsence. A member that comes back is admitted again under a new
// member id (its actor-system id plus "#n").
//
// Use: pass the provider to cluster.Configure, start the protoactor
// cluster (StartMember or StartClient — both only record the cluster),
// then call Join with the discovery component once it is up. Leave (or
// Shutdown) stops following and deregisters.
type provider struct {
	cfg  providerConfig
	log  *slog.Logger
	gate *streamGate // set by Node: see publish

	mu       sync.Mutex
	cl       *cluster.Cluster
	client   bool
	cancel   context.CancelFunc
	done     chan struct{}
	self     *backends.ServiceInfo
	disc     backends.ServiceDiscovery // a member's registration goes through it
	members  []Member
	memberCh chan struct{} // closed and replaced on every change
}

var _ cluster.ClusterProvider = (*provider)(nil)

// newProvider returns a provider; it does nothing until Join.
func newProvider(cfg providerConfig) *provider {
	if cfg.TTL <= 0 {
		cfg.TTL = defaultMemberTTL
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = defaultProbeInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = defaultPingTimeout
	}
	if cfg.MaxAbsence <= 0 {
		cfg.MaxAbsence = defaultMaxAbsence
	}
	if cfg.SuspectAfter <= 0 {
		cfg.SuspectAfter = defaultSuspectAfter
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &provider{cfg: cfg, log: log.With("cluster", cfg.Name), memberCh: make(chan struct{})}
}

// StartMember implements cluster.ClusterProvider: it records the cluster.
func (p *provider) StartMember(c *cluster.Cluster) error { return p.start(c, false) }

// StartClient implements cluster.ClusterProvider: it records the cluster;
// a client registers nothing.
func (p *provider) StartClient(c *cluster.Cluster) error { return p.start(c, true) }

func (p *provider) start(c *cluster.Cluster, client bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		return fmt.Errorf("cluster provider: already started: %w", backends.ErrInvalidArgument)
	}
	p.cl, p.client = c, client
	return nil
}

// Shutdown implements cluster.ClusterProvider: Leave, bounded by 5s.
func (p *provider) Shutdown(bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Leave(ctx)
}

// source yields discovery watches of the service: a member's own
// discovery, or a client's rotation over seeds and known members.
type source interface {
	// open starts a watch; events end when ctx ends or the source fails.
	open(ctx context.Context, service string) (<-chan backends.ServiceEvent, error)
	// close releases what the last open left (called once, at the end).
	close()
}

// staticSource is one discovery component.
type staticSource struct{ d backends.ServiceDiscovery }

func (s staticSource) open(ctx context.Context, service string) (<-chan backends.ServiceEvent, error) {
	return s.d.Watch(ctx, service)
}

func (staticSource) close() {}

// Join registers this member (not a client) through disc and follows the
// service, feeding the cluster's MemberList. It returns once the first
// snapshot is applied (nil), or with the registration's error, or
// ErrUnavailable when ctx ends first. The following goes on until Leave.
func (p *provider) Join(ctx context.Context, disc backends.ServiceDiscovery) error {
	p.mu.Lock()
	client := p.client
	p.mu.Unlock()
	if !client {
		if err := p.register(ctx, disc); err != nil {
			return err
		}
	}
	return p.follow(ctx, staticSource{disc})
}

// JoinSeeds follows the service as a client-only node does: through the
// discovery actor of the first seed that answers (dial builds a discovery
// facade for a member address), moving on to the next seed — or to any
// member it has learned of — when that one stops answering. It returns as
// Join does.
func (p *provider) JoinSeeds(ctx context.Context, seeds []string, dial func(addr string) backends.ServiceDiscovery) error {
	p.mu.Lock()
	c := p.cl
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("cluster provider: join before the cluster started: %w", backends.ErrInvalidArgument)
	}
	if len(seeds) == 0 {
		return backends.Invalid("seeds", "", "at least one seed is needed")
	}
	return p.follow(ctx, &seedSource{root: c.ActorSystem.Root, seeds: seeds, known: p.Members, dial: dial})
}

func (p *provider) register(ctx context.Context, disc backends.ServiceDiscovery) error {
	p.mu.Lock()
	c := p.cl
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("cluster provider: join before the cluster started: %w", backends.ErrInvalidArgument)
	}
	kinds := c.GetClusterKinds()
	slices.Sort(kinds)
	self := backends.ServiceInfo{
		ID: c.ActorSystem.ID, Name: p.cfg.Name, Address: c.ActorSystem.Address(),
		Metadata: map[string]string{metaKinds: strings.Join(kinds, ","), metaNodeID: p.cfg.NodeID},
	}
	if err := disc.Register(ctx, self, p.cfg.TTL); err != nil {
		return fmt.Errorf("cluster %s: register member: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	p.self, p.disc = &self, disc
	p.mu.Unlock()
	return nil
}

// follow starts the membership goroutine and waits for the first snapshot.
func (p *provider) follow(ctx context.Context, src source) error {
	p.mu.Lock()
	if p.cancel != nil {
		p.mu.Unlock()
		return fmt.Errorf("cluster provider: already joined: %w", backends.ErrInvalidArgument)
	}
	life, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	m := &membership{p: p, cl: p.cl, self: p.self, client: p.client, joined: make(chan struct{}),
		pings: make(chan pingResult, 16), members: map[string]*memberState{}, nextGen: map[string]int{}}
	done := p.done
	p.mu.Unlock()
	go func() {
		defer close(done)
		m.run(life, src)
	}()
	select {
	case <-m.joined:
		return nil
	case <-ctx.Done():
		err := m.lastError()
		if err == nil {
			err = ctx.Err()
		}
		return backends.Unavailable("cluster "+p.cfg.Name+": join", err)
	}
}

// Leave stops following the service and deregisters this member
// (best-effort, within ctx). Idempotent.
func (p *provider) Leave(ctx context.Context) error {
	p.mu.Lock()
	cancel, done, self, disc := p.cancel, p.done, p.self, p.disc
	p.cancel, p.self = nil, nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if self != nil && disc != nil {
		if err := disc.Deregister(ctx, self.ID); err != nil && !errors.Is(err, backends.ErrNotFound) &&
			!errors.Is(err, backends.ErrClosed) {
			return fmt.Errorf("cluster %s: deregister member: %w", p.cfg.Name, err)
		}
	}
	return nil
}

// Members returns the current member list (sorted by address).
func (p *provider) Members() []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members)
}

// Changed returns a channel closed at the next change of the member list.
func (p *provider) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.memberCh
}

// WaitMembers waits until the member list satisfies ok, or ctx ends.
func (p *provider) WaitMembers(ctx context.Context, ok func([]Member) bool) ([]Member, error) {
	for {
		ch := p.Changed()
		ms := p.Members()
		if ok(ms) {
			return ms, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ms, fmt.Errorf("cluster %s: waiting for members: %w", p.cfg.Name, ctx.Err())
		}
	}
}

func (p *provider) setMembers(ms []Member) {
	// OnTopology first (it updates the node's placement), then the
	// watchers of Changed: one that reacts to a departed member must find
	// its grains' new places, not the old ones.
	if p.cfg.OnTopology != nil {
		p.cfg.OnTopology(slices.Clone(ms))
	}
	p.mu.Lock()
	p.members = ms
	close(p.memberCh)
	p.memberCh = make(chan struct{})
	p.mu.Unlock()
}

// deathWatch calls f once when pid stops (or its node becomes
// unreachable); the returned function stops watching.
func deathWatch(root *actor.RootContext, pid *actor.PID, f func()) (func(), error) {
	var once sync.Once
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(pid)
		case *actor.Terminated:
			if m.Who.GetId() == pid.GetId() && m.Who.GetAddress() == pid.GetAddress() {
				once.Do(f)
				c.Stop(c.Self())
			}
		}
	})
	w, err := root.SpawnNamed(props, "baton-cluster-deathwatch-"+randomID())
	if err != nil {
		return nil, backends.Unavailable("cluster: death watch", err)
	}
	return func() { root.Stop(w) }, nil
}

func randomID() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}
