package components

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// LockGrainConfig configures a lock grain: a LockActor that serves exactly
// one lock name for a whole cluster (one virtual actor per name).
type LockGrainConfig struct {
	// Activate is called when the grain (or a restarted instance of it)
	// starts: it returns the lock actor's configuration (the Locker of the
	// namespace this grain serves), the lock name, and a release function
	// called once when this instance stops or restarts. An error makes the
	// instance answer every request with it until it passivates.
	Activate func(ctx actor.Context) (cfg LockActorConfig, name string, release func(), err error)
	// IdleTimeout stops (passivates) the grain after this long without a
	// message while it has no waiter and no lease; the next request
	// activates it again. Default: 0, never.
	IdleTimeout time.Duration
}

// LockGrain is a LockActor for one lock name, hosted by a cluster, that
// also death-watches whoever waits for or holds the lock: the Subscriber of
// each AcquireRequest. When a subscriber is reported gone, the grain
// withdraws its waiting requests at once. It releases the subscriber's
// leases at once only when it is gone for sure — its actor stopped, or its
// node refuses connections (the process died) — so a dead holder does not
// keep an auto-renewed lock and the next waiter gets it without waiting for
// the TTL. A holder whose connection merely broke (paused, cut off) keeps
// its lease until it releases it or the TTL runs out. When the grain stops
// (it moves, its node stops) it detaches its leases instead of releasing
// them (backends.Detacher): their holders bring them to the next
// activation with an AdoptRequest. The backend lease and its fencing token
// stay the source of truth: a grain that moves or dies can only ever hand
// out what the backend grants.
type LockGrain struct {
	*LockActor
	cfg     LockGrainConfig
	name    string
	release func()
	err     error
	watched map[string]*actor.PID // subscriber key → PID, watched by this grain
}

// NewLockGrainProps returns the props of a lock grain (register them as a
// cluster kind).
func NewLockGrainProps(cfg LockGrainConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &LockGrain{cfg: cfg, watched: map[string]*actor.PID{}}
	})
}

// Receive implements actor.Actor.
func (g *LockGrain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		g.activate(ctx)
		if g.LockActor != nil {
			g.LockActor.Receive(ctx)
		}
		if g.cfg.IdleTimeout > 0 {
			ctx.SetReceiveTimeout(g.cfg.IdleTimeout)
		}
		return
	case *actor.Stopping, *actor.Restarting:
		if g.LockActor != nil {
			g.LockActor.Receive(ctx)
		}
		g.deactivate()
		return
	case *actor.ReceiveTimeout:
		if g.idle() {
			ctx.Stop(ctx.Self())
		}
		return
	case *actor.Terminated:
		if _, ok := g.watched[pidKey(m.Who)]; ok {
			delete(g.watched, pidKey(m.Who))
			if g.LockActor != nil {
				g.subscriberGone(ctx, m.Who, m.Why != actor.TerminatedReason_AddressTerminated)
			}
		}
	case *LockGrainReset:
		if g.LockActor != nil {
			g.LockActor.reset(ctx, fmt.Errorf("lock grain %q: reset after a stall: %w", g.name, backends.ErrClosed))
		}
		return
	case *holderDead:
		if g.LockActor != nil && !g.LockActor.stale(m) {
			g.releaseFor(ctx, m.key)
		}
		return
	case *lockv1.AcquireRequest:
		if g.err == nil && m.GetName() != g.name && backends.ValidateName("lock name", m.GetName()) == nil {
			respond(ctx, acquireFailed(backends.Invalid("lock name", m.GetName(), "this grain serves "+g.name)))
			return
		}
	}
	if g.err != nil {
		if ctx.Sender() != nil {
			switch ctx.Message().(type) {
			case actor.SystemMessage, actor.AutoReceiveMessage:
			default:
				ctx.Respond(statusv1.FromError(g.err))
			}
		}
		return
	}
	g.LockActor.Receive(ctx)
	g.syncWatches(ctx)
}

func (g *LockGrain) activate(ctx actor.Context) {
	if g.cfg.Activate == nil {
		g.err = fmt.Errorf("lock grain: no activation: %w", backends.ErrNotSupported)
		return
	}
	cfg, name, release, err := g.cfg.Activate(ctx)
	if err != nil {
		g.err = err
		return
	}
	g.name, g.release = name, release
	g.LockActor = newLockActor(cfg)
	// A grain that stops (it moved, its node stops) leaves held leases to
	// their holders, who bring them to the next activation.
	g.LockActor.keepLeases = true
}

func (g *LockGrain) deactivate() {
	if g.release != nil {
		g.release()
		g.release = nil
	}
}

// idle reports whether the grain holds nothing worth keeping it alive for.
func (g *LockGrain) idle() bool {
	a := g.LockActor
	if a == nil {
		return true
	}
	return len(a.waiters) == 0 && len(a.leases) == 0 && len(a.queues) == 0
}

// syncWatches keeps the subscribers of current waiters and leases
// death-watched.
func (g *LockGrain) syncWatches(ctx actor.Context) {
	a := g.LockActor
	want := make(map[string]*actor.PID, len(a.waiters)+len(a.leases))
	for _, w := range a.waiters {
		if w.subscriber != nil {
			want[pidKey(w.subscriber)] = w.subscriber
		}
	}
	for _, h := range a.leases {
		if h.subscriber != nil {
			want[pidKey(h.subscriber)] = h.subscriber
		}
	}
	for k, p := range want {
		if _, ok := g.watched[k]; !ok {
			g.watched[k] = p
			ctx.Watch(p)
		}
	}
	// Subscribers come back (a contender acquires again and again):
	// watches are kept until there are many, instead of costing a watch
	// and an unwatch message per acquisition.
	if len(g.watched) <= grainWatchMax {
		return
	}
	for k, p := range g.watched {
		if _, ok := want[k]; !ok {
			delete(g.watched, k)
			ctx.Unwatch(p)
		}
	}
}

// grainWatchMax bounds the subscribers a lock grain keeps watching while
// they wait for or hold nothing.
const grainWatchMax = 256

// subscriberGone withdraws the waiting requests of a subscriber that is
// gone and gives up its leases. certain says that it stopped for sure (its
// actor stopped, or never existed); otherwise only the connection to its
// node broke, and its leases are given up only once its node is known dead
// (see probeHolder): a holder that is merely cut off still holds its lease
// until it releases it or the TTL runs out.
func (g *LockGrain) subscriberGone(ctx actor.Context, who *actor.PID, certain bool) {
	a := g.LockActor
	key := pidKey(who)
	for _, w := range a.waiters {
		if w.subscriber == nil || pidKey(w.subscriber) != key {
			continue
		}
		if w.cancel != nil {
			// Running: the backend call returns soon; onAcquired then
			// gives up whatever it was granted.
			w.canceled = true
			w.cancel()
			continue
		}
		a.unqueue(w)
		a.finishWaiter(ctx, w, acquireFailed(withdrawn("lock", w.name)))
		a.tidy(w.name)
	}
	if certain {
		g.releaseFor(ctx, key)
		return
	}
	for _, h := range a.leases {
		if h.subscriber != nil && pidKey(h.subscriber) == key {
			g.probeHolder(who)
			return
		}
	}
}

// releaseFor gives up the leases of a subscriber that is gone.
func (g *LockGrain) releaseFor(ctx actor.Context, key string) {
	a := g.LockActor
	for _, h := range a.leases {
		if h.subscriber == nil || pidKey(h.subscriber) != key {
			continue
		}
		_ = a.leave(ctx, h, true)
		a.log.Debug("baton: lock released for a holder that is gone", "lock", h.name, "holder", key)
	}
}

// LockGrainReset tells a lock grain that its process did not run for a
// while — long enough for the other members to have placed the grain
// elsewhere meanwhile — so its state may be stale: its queue may hold
// waiters that went elsewhere, its leases may have moved. The grain answers
// its waiters CODE_CLOSED (those still waiting queue again), detaches its
// leases (their holders bring them back with an AdoptRequest) and starts
// afresh in place. Unlike stopping it, this leaves the grain's placement
// alone.
type LockGrainReset struct{}

// holderDead reports that the node of a holder refused a connection.
type holderDead struct {
	stamp
	key string
}

// holderProbeTimeout bounds the connect of probeHolder.
const holderProbeTimeout = time.Second

// probeHolder tells a holder's dead node from one that is only cut off:
// a connect to its remoting address is refused at once when its process is
// gone (the port is closed), while a paused, slow or partitioned process
// lets it succeed or time out. Only a refusal frees the holder's leases
// early (holderDead); otherwise they last until released or expired.
func (g *LockGrain) probeHolder(who *actor.PID) {
	a := g.LockActor
	send, st, key, addr, life := a.sender(), a.stamp(), pidKey(who), who.GetAddress(), a.life
	a.spawn(func() {
		ctx, cancel := context.WithTimeout(life, holderProbeTimeout)
		defer cancel()
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			return
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			send(&holderDead{stamp: st, key: key})
		}
	})
}
