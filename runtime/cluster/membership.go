package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
)

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
	p      *provider
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
	t := time.NewTimer(components.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt + 1))
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
