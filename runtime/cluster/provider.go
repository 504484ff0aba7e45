package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/baton-go/baton/actors"
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

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	// Name is the service name members register under. Required.
	Name string
	// TTL of the member's registration. Default: DefaultMemberTTL.
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

// Provider is a protoactor cluster provider built on Baton's service
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
type Provider struct {
	cfg  ProviderConfig
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

var _ cluster.ClusterProvider = (*Provider)(nil)

// NewProvider returns a provider; it does nothing until Join.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultMemberTTL
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxAbsence <= 0 {
		cfg.MaxAbsence = DefaultMaxAbsence
	}
	if cfg.SuspectAfter <= 0 {
		cfg.SuspectAfter = DefaultSuspectAfter
	}
	log := cfg.Logger
	if log == nil {
		log = actors.DiscardLogger()
	}
	return &Provider{cfg: cfg, log: log.With("cluster", cfg.Name), memberCh: make(chan struct{})}
}

// StartMember implements cluster.ClusterProvider: it records the cluster.
func (p *Provider) StartMember(c *cluster.Cluster) error { return p.start(c, false) }

// StartClient implements cluster.ClusterProvider: it records the cluster;
// a client registers nothing.
func (p *Provider) StartClient(c *cluster.Cluster) error { return p.start(c, true) }

func (p *Provider) start(c *cluster.Cluster, client bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		return fmt.Errorf("cluster provider: already started: %w", backends.ErrInvalidArgument)
	}
	p.cl, p.client = c, client
	return nil
}

// Shutdown implements cluster.ClusterProvider: Leave, bounded by 5s.
func (p *Provider) Shutdown(bool) error {
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
func (p *Provider) Join(ctx context.Context, disc backends.ServiceDiscovery) error {
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
func (p *Provider) JoinSeeds(ctx context.Context, seeds []string, dial func(addr string) backends.ServiceDiscovery) error {
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

func (p *Provider) register(ctx context.Context, disc backends.ServiceDiscovery) error {
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
func (p *Provider) follow(ctx context.Context, src source) error {
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
func (p *Provider) Leave(ctx context.Context) error {
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
func (p *Provider) Members() []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members)
}

// Changed returns a channel closed at the next change of the member list.
func (p *Provider) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.memberCh
}

// WaitMembers waits until the member list satisfies ok, or ctx ends.
func (p *Provider) WaitMembers(ctx context.Context, ok func([]Member) bool) ([]Member, error) {
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

func (p *Provider) setMembers(ms []Member) {
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

// memberState is what the membership knows of one registered instance.
type memberState struct {
	info        backends.ServiceInfo
	gen         int
	present     bool // in discovery now
	absentSince time.Time
	pinging     bool
	// unreachable: its connection broke and a ping failed while it is
	// still registered (killed, not yet expired; or cut off from us), or
	// it left pings unanswered (paused, hung). It is left out of the
	// topology until a ping succeeds again.
	unreachable bool
	// answered is when it last answered a ping (or joined).
	answered time.Time
}

// pingActorName names the actor every node runs for the membership's
// pings.
const pingActorName = "baton-cluster-ping"

type pingResult struct {
	id    string
	gen   int
	alive bool
	// refused: the connect was refused — nothing listens, the process is
	// gone — rather than left unanswered.
	refused bool
}

// membership is the goroutine that follows the service. All its state is
// owned by that goroutine.
type membership struct {
	p      *Provider
	cl     *cluster.Cluster
	self   *backends.ServiceInfo
	client bool

	joined     chan struct{}
	joinedOnce sync.Once
	errMu      sync.Mutex
	err        error

	view       map[string]backends.ServiceInfo
	members    map[string]*memberState
	nextGen    map[string]int
	pings      chan pingResult
	terminated chan string // addresses whose connection broke
	pingWG     sync.WaitGroup
	published  string
}

func (m *membership) setError(err error) {
	m.errMu.Lock()
	m.err = err
	m.errMu.Unlock()
}

func (m *membership) lastError() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

func (m *membership) run(ctx context.Context, src source) {
	defer m.pingWG.Wait()
	defer src.close()
	// A broken connection is the fastest sign of a dead member: it is
	// pinged at once instead of waiting for its registration to expire.
	m.terminated = make(chan string, 64)
	sub := m.cl.ActorSystem.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*remote.EndpointTerminatedEvent); ok {
			select {
			case m.terminated <- e.Address:
			default: // the probe tick catches up
			}
		}
	})
	defer m.cl.ActorSystem.EventStream.Unsubscribe(sub)
	tick := time.NewTicker(m.p.cfg.ProbeInterval)
	defer tick.Stop()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		wctx, cancel := context.WithCancel(ctx)
		events, err := src.open(wctx, m.p.cfg.Name)
		if err != nil {
			cancel()
			m.setError(err)
			m.p.log.Debug("baton: cluster membership watch failed", "err", err)
			if !m.sleep(ctx, attempt) {
				return
			}
			continue
		}
		attempt = 0
		m.view = nil // the watch starts with a snapshot
		m.follow(ctx, events, tick.C)
		cancel()
		for range events { // the watch closes its channel once wctx ended
		}
	}
}

// follow applies events until the watch ends or ctx ends.
func (m *membership) follow(ctx context.Context, events <-chan backends.ServiceEvent, tick <-chan time.Time) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				m.setError(errors.New("membership watch ended"))
				return
			}
			m.apply(ev)
		case r := <-m.pings:
			m.onPing(r)
		case addr := <-m.terminated:
			m.onTerminated(ctx, addr)
		case <-tick:
			m.probe(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (m *membership) sleep(ctx context.Context, attempt int) bool {
	t := time.NewTimer(actors.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt + 1))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *membership) apply(ev backends.ServiceEvent) {
	switch ev.Type {
	case backends.ServiceSnapshot, backends.ServiceAdded, backends.ServiceUpdated, backends.ServiceRemoved:
		m.view = backends.ApplyServiceEvent(m.view, ev)
	default:
		return
	}
	if m.view == nil {
		return // changes before the snapshot: wait for it
	}
	m.reconcile(time.Now())
	m.joinedOnce.Do(func() { close(m.joined) })
}

// reconcile brings the member states in line with the discovery view.
func (m *membership) reconcile(now time.Time) {
	for id, svc := range m.view {
		if m.self != nil && id == m.self.ID {
			continue
		}
		if _, _, err := splitHostPort("address", svc.Address, false); err != nil {
			continue // not a member address; ignore the instance
		}
		st := m.members[id]
		switch {
		case st == nil:
			m.members[id] = &memberState{info: svc, gen: m.nextGen[id], present: true, answered: now}
		case st.info.Address != svc.Address:
			// Same id at a new address: a new incarnation.
			m.nextGen[id] = st.gen + 1
			m.members[id] = &memberState{info: svc, gen: st.gen + 1, present: true, answered: now}
		default:
			st.info, st.present, st.absentSince = svc, true, time.Time{}
		}
	}
	for id, st := range m.members {
		if _, ok := m.view[id]; !ok && st.present {
			st.present, st.absentSince = false, now
		}
	}
	m.publish()
}

// onTerminated pings the member at addr, whose connection broke.
func (m *membership) onTerminated(ctx context.Context, addr string) {
	for id, st := range m.members {
		if st.info.Address == addr && !st.pinging && !st.unreachable {
			st.pinging = true
			m.ping(ctx, id, st)
		}
	}
}

// probe pings absent and unreachable members and removes those gone for
// too long.
func (m *membership) probe(ctx context.Context) {
	now := time.Now()
	changed := false
	for id, st := range m.members {
		if st.present && !st.unreachable {
			// Every member is pinged through its actor system, so one
			// that is paused or hung — it still accepts connections —
			// leaves the topology within a few probe intervals.
			if !st.pinging {
				st.pinging = true
				m.ping(ctx, id, st)
			}
			continue
		}
		if st.present {
			if !st.pinging {
				st.pinging = true
				m.ping(ctx, id, st)
			}
			continue
		}
		if now.Sub(st.absentSince) >= m.p.cfg.MaxAbsence {
			m.remove(id, st, "absent too long")
			changed = true
			continue
		}
		if !st.pinging {
			st.pinging = true
			m.ping(ctx, id, st)
		}
	}
	if changed {
		m.publish()
	}
}

// ping checks whether the member answers: a TCP connect to its remoting
// port, then a Touch to its ping actor, each within PingTimeout. A connect
// refused at once is a process that is gone. A member that accepts the
// connect but does not answer the Touch in time is paused, hung or
// overloaded; the kernel would accept a bare connect for it, so only the
// answer of its actor system counts (a protoactor request would wait
// behind the endpoint writer, which sleeps 2s after a failed connect, so
// the connect goes first).
func (m *membership) ping(ctx context.Context, id string, st *memberState) {
	addr, gen := st.info.Address, st.gen
	timeout := m.p.cfg.PingTimeout
	root := m.cl.ActorSystem.Root
	m.pingWG.Add(1)
	go func() {
		defer m.pingWG.Done()
		r := pingResult{id: id, gen: gen}
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			_, err = actors.Request[*actor.Touched](pctx, root, actor.NewPID(addr, pingActorName), &actor.Touch{})
			cancel()
			// Any answer in time counts, a dead letter too (a member that
			// runs no ping actor): its actor system is responsive.
			r.alive = err == nil || !errors.Is(err, context.DeadlineExceeded)
		} else {
			r.refused = errors.Is(err, syscall.ECONNREFUSED)
		}
		select {
		case m.pings <- r:
		case <-ctx.Done():
		}
	}()
}

func (m *membership) onPing(r pingResult) {
	st := m.members[r.id]
	if st == nil || st.gen != r.gen {
		return
	}
	st.pinging = false
	if r.alive {
		st.answered = time.Now()
	} else if !r.refused && st.present && !st.unreachable && time.Since(st.answered) < m.p.cfg.SuspectAfter {
		// No answer in time: suspect it only once it has answered
		// nothing for SuspectAfter.
		return
	}
	switch {
	case r.alive && st.unreachable:
		// Back: re-admitted under a new member id (protoactor blocked
		// the old one when it left the topology).
		st.unreachable = false
		st.gen++
		m.nextGen[r.id] = st.gen + 1
		m.publish()
	case r.alive:
	case st.present:
		if !st.unreachable {
			m.p.log.Info("baton: cluster member unreachable", "member", r.id, "address", st.info.Address)
			st.unreachable = true
			m.publish()
		}
	default:
		m.remove(r.id, st, "unreachable")
		m.publish()
	}
}

func (m *membership) remove(id string, st *memberState, why string) {
	m.p.log.Info("baton: cluster member removed", "member", id, "address", st.info.Address, "why", why)
	delete(m.members, id)
	m.nextGen[id] = st.gen + 1
}

// publish hands the member list to protoactor when it changed.
func (m *membership) publish() {
	var list []Member
	if m.self != nil {
		list = append(list, memberOf(*m.self, 0))
	}
	for _, st := range m.members {
		if !st.unreachable {
			list = append(list, memberOf(st.info, st.gen))
		}
	}
	slices.SortFunc(list, func(a, b Member) int { return strings.Compare(a.Address+a.ID, b.Address+b.ID) })
	var key strings.Builder
	for _, x := range list {
		key.WriteString(x.ID + "@" + x.Address + "=" + strings.Join(x.Kinds, ",") + ";")
	}
	if key.String() == m.published {
		return
	}
	m.published = key.String()
	pm := make(cluster.Members, 0, len(list))
	for _, x := range list {
		host, port, _ := net.SplitHostPort(x.Address)
		n, _ := strconv.Atoi(port)
		pm = append(pm, &cluster.Member{Id: x.ID, Host: host, Port: int32(n), Kinds: slices.Clone(x.Kinds)})
	}
	// Baton's placement first: protoactor's update terminates the
	// endpoints of departed members, whose grains' watchers then look for
	// the grains' new places at once.
	m.p.setMembers(list)
	// protoactor blocks the members that left with a write the endpoint
	// reader reads without a lock when a peer connects (BlockList.Block vs
	// IsBlocked, a data race at the pinned version); connections read it
	// while holding the gate, so the update takes it exclusively.
	if g := m.p.gate; g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
	}
	m.cl.MemberList.UpdateClusterTopology(pm)
	m.p.log.Debug("baton: cluster topology", "members", len(list))
}

func memberOf(s backends.ServiceInfo, gen int) Member {
	id := s.ID
	if gen > 0 {
		id += "#" + strconv.Itoa(gen)
	}
	var kinds []string
	if k := s.Metadata[metaKinds]; k != "" {
		kinds = strings.Split(k, ",")
	}
	return Member{ID: id, Address: s.Address, Kinds: kinds, NodeID: s.Metadata[metaNodeID]}
}

// seedSource is a client-only node's view of the service: the discovery
// actor of a seed (or of any member it has learned of), over remoting.
// When that member stops answering, the next one takes over.
type seedSource struct {
	root   *actor.RootContext
	seeds  []string
	known  func() []Member
	dial   func(addr string) backends.ServiceDiscovery
	next   int
	closer func() // closes the last dialled client
}

func (s *seedSource) candidates() []string {
	out := slices.Clone(s.seeds)
	for _, m := range s.known() {
		if !slices.Contains(out, m.Address) && len(m.Kinds) > 0 {
			out = append(out, m.Address)
		}
	}
	return out
}

func (s *seedSource) open(ctx context.Context, service string) (<-chan backends.ServiceEvent, error) {
	if s.closer != nil {
		s.closer()
		s.closer = nil
	}
	cands := s.candidates()
	addr := cands[s.next%len(cands)]
	s.next++
	d := s.dial(addr)
	closeD := func() {
		if d != nil {
			_ = d.Close()
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	events, err := d.Watch(wctx, service)
	if err != nil {
		cancel()
		closeD()
		return nil, fmt.Errorf("seed %s: %w", addr, err)
	}
	// The seed's death ends the watch, so the next candidate is tried.
	stopWatch, err := deathWatch(s.root, pidOf(addr, discoveryActorName), cancel)
	if err != nil {
		cancel()
		closeD()
		return nil, err
	}
	s.closer = func() { stopWatch(); cancel(); closeD() }
	return events, nil
}

func (s *seedSource) close() {
	if s.closer != nil {
		s.closer()
		s.closer = nil
	}
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
