package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// resolver finds the PID of a grain: the member that owns an identity is
// chosen by rendezvous hashing over the members hosting its kind — the same
// function protoactor's disthash identity lookup uses, fed with the same
// topology — and that member's placement actor activates the grain (or
// returns the running one).
//
// It replaces disthash's own Get on the calling side because that one has
// no context (a fixed 5s wait), and reads the partition manager's
// rendezvous without synchronisation while topology updates replace it (a
// data race in protoactor-go at the pinned version). The placement side —
// activation, and the passivation of grains whose owner changed — is
// disthash's.
type resolver struct {
	root    *actor.RootContext
	timeout time.Duration

	mu    sync.RWMutex
	rdv   *cluster.Rendezvous
	cache map[string]*actor.PID // kind/identity → grain
}

// resolverCacheMax bounds the PID cache; it is cleared when full.
const resolverCacheMax = 8192

func newResolver(root *actor.RootContext, timeout time.Duration) *resolver {
	return &resolver{root: root, timeout: timeout, rdv: cluster.NewRendezvous(), cache: map[string]*actor.PID{}}
}

// setMembers installs a new topology; cached grains are forgotten.
func (r *resolver) setMembers(ms []Member) {
	pm := make(cluster.Members, 0, len(ms))
	for _, m := range ms {
		host, port, err := splitHostPort("address", m.Address, false)
		if err != nil {
			continue
		}
		pm = append(pm, &cluster.Member{Id: m.ID, Host: host, Port: int32(port), Kinds: m.Kinds})
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(pm)
	r.mu.Lock()
	r.rdv = rdv
	r.cache = map[string]*actor.PID{}
	r.mu.Unlock()
}

// owner returns the address of the member owning kind/identity, "" when no
// member hosts kind.
func (r *resolver) owner(kind, identity string) string {
	r.mu.RLock()
	rdv := r.rdv
	r.mu.RUnlock()
	return rdv.GetByClusterIdentity(cluster.NewClusterIdentity(identity, kind))
}

// resolve returns the grain's PID, activating it on its owner if needed.
func (r *resolver) resolve(ctx context.Context, kind, identity string) (*actor.PID, error) {
	key := kind + "/" + identity
	addr := r.owner(kind, identity)
	if addr == "" {
		return nil, backends.Unavailable("cluster: "+kind, errors.New("no member hosts this kind"))
	}
	r.mu.RLock()
	pid := r.cache[key]
	r.mu.RUnlock()
	if pid != nil && pid.Address == addr {
		return pid, nil
	}
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := actors.Request[*cluster.ActivationResponse](rctx, r.root, pidOf(addr, disthash.PartitionActivatorActorName),
		&cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(identity, kind)})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("cluster: activate %s: %w", key, cerr)
		}
		return nil, backends.Unavailable("cluster: activate "+key+" on "+addr, err)
	}
	if resp.GetPid() == nil || resp.GetFailed() {
		return nil, backends.Unavailable("cluster: activate "+key+" on "+addr, errors.New("activation failed"))
	}
	r.mu.Lock()
	if len(r.cache) >= resolverCacheMax {
		r.cache = map[string]*actor.PID{}
	}
	r.cache[key] = resp.GetPid()
	r.mu.Unlock()
	return resp.GetPid(), nil
}

// forget drops a cached grain PID that turned out dead.
func (r *resolver) forget(kind, identity string, pid *actor.PID) {
	key := kind + "/" + identity
	r.mu.Lock()
	if c := r.cache[key]; c != nil && c.Address == pid.GetAddress() && c.Id == pid.GetId() {
		delete(r.cache, key)
	}
	r.mu.Unlock()
}

// proxy is a stable local PID for something that moves: a grain, or the
// component actor of some member. Facades from package runtime (cache,
// config, discovery, election) take one fixed PID; given a proxy's, they
// follow the grain wherever it is. The proxy forwards every message to the
// current target keeping its sender, so answers go straight back to the
// requester. It resolves the target on first use and death-watches it;
// when the target stops (moved, passivated, node gone) or the topology
// changes, the next message resolves again. Messages that arrive while it
// resolves wait, in order; if resolution fails they are answered with an
// UNAVAILABLE status.
type proxy struct {
	resolve func(ctx context.Context) (*actor.PID, error)
	timeout time.Duration

	life   context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	target *actor.PID
	seq    uint64
	busy   bool
	queue  []parked
}

type parked struct {
	msg    any
	sender *actor.PID
}

// Messages of the proxy to itself, and from the node.
type (
	proxyResolved struct {
		seq uint64
		pid *actor.PID
		err error
	}
	// proxyReset makes the next message resolve again.
	proxyReset struct{}
)

// proxyQueueMax bounds the messages waiting for a resolution.
const proxyQueueMax = 10000

func newProxyProps(timeout time.Duration, resolve func(ctx context.Context) (*actor.PID, error)) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &proxy{resolve: resolve, timeout: timeout} })
}

// Receive implements actor.Actor.
func (p *proxy) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		p.life, p.stop = context.WithCancel(context.Background())
	case *actor.Stopping, *actor.Restarting:
		p.stop()
		p.wg.Wait()
		p.fail(c, fmt.Errorf("cluster proxy: %w", backends.ErrClosed))
	case *actor.Stopped:
	case *proxyResolved:
		if m.seq != p.seq {
			return
		}
		p.busy = false
		if m.err != nil {
			p.fail(c, m.err)
			return
		}
		p.target = m.pid
		c.Watch(m.pid)
		queue := p.queue
		p.queue = nil
		for _, q := range queue {
			p.forward(c, q.msg, q.sender)
		}
	case *proxyReset:
		p.reset(c)
	case *actor.Terminated:
		if p.target != nil && m.Who.GetId() == p.target.Id && m.Who.GetAddress() == p.target.Address {
			p.target = nil
		}
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if p.target != nil {
			p.forward(c, m, c.Sender())
			return
		}
		if len(p.queue) >= proxyQueueMax {
			if c.Sender() != nil {
				c.Respond(statusv1.FromError(backends.Unavailable("cluster proxy", errors.New("too many requests waiting"))))
			}
			return
		}
		p.queue = append(p.queue, parked{msg: m, sender: c.Sender()})
		p.startResolve(c)
	}
}

func (p *proxy) reset(c actor.Context) {
	if p.target != nil {
		c.Unwatch(p.target)
		p.target = nil
	}
}

func (p *proxy) forward(c actor.Context, msg any, sender *actor.PID) {
	if sender == nil {
		c.Send(p.target, msg)
		return
	}
	c.RequestWithCustomSender(p.target, msg, sender)
}

func (p *proxy) startResolve(c actor.Context) {
	if p.busy {
		return
	}
	p.busy = true
	p.seq++
	seq, life, root, self := p.seq, p.life, c.ActorSystem().Root, c.Self()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(life, p.timeout)
		pid, err := p.resolve(ctx)
		cancel()
		if life.Err() == nil {
			root.Send(self, &proxyResolved{seq: seq, pid: pid, err: err})
		}
	}()
}

// fail answers every waiting request with err.
func (p *proxy) fail(c actor.Context, err error) {
	st := statusv1.FromError(err)
	for _, q := range p.queue {
		if q.sender != nil {
			c.Send(q.sender, st)
		}
	}
	p.queue = nil
}

// LockOwner returns the address of the member whose grain serves lock name
// of namespace ns, given a member list (Node.Members), or "" when no member
// hosts lock grains. It is for diagnostics and tests: placement changes
// with the topology.
func LockOwner(members []Member, ns backends.Namespace, name string) string {
	r := newResolver(nil, 0)
	r.setMembers(members)
	return r.owner(KindLock, lockIdentity(ns, name))
}
