package components

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/backends"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// LockActorConfig configures the lock actor, which serves locks (lockv1
// Acquire/Release/Refresh/Cancel/Adopt). Elections have their own actor
// (ElectionActorConfig).
type LockActorConfig struct {
	// Locker is the backend lock component. Default: nil, and lock requests
	// are answered CODE_NOT_SUPPORTED.
	Locker backends.Locker
	// Backend is "redis" or "etcd", for the connector gate.
	Backend string
	// Supervisor is the connector supervisor. Default: nil, no gate (the
	// backend's own errors are reported as they come).
	Supervisor *actor.PID
	// OpTimeout bounds one backend call made from the mailbox (TryAcquire,
	// Release, Refresh, Handoff, Adopt) and the releases done when the
	// actor stops. Default: 5s.
	OpTimeout time.Duration
	// DefaultTTL is the lease TTL of an AcquireRequest that gives none.
	// Default: 0, meaning backends.DefaultLockTTL.
	DefaultTTL time.Duration
	// HandoffLimit bounds how long a lock may pass from one local waiter to
	// the next without ever becoming free. Past it, the next release frees
	// the lock (and publishes it) so that contenders outside this actor —
	// Redis waiters of other processes, which have no place in any queue —
	// get their chance; the local waiters then acquire again. Default:
	// DefaultHandoffLimit; negative: no limit.
	HandoffLimit time.Duration
	// Owner prefixes the owner generated for an AcquireRequest that names
	// none (usually the node id), so a lock's holder can be traced to its
	// node. Default: empty, and the backend generates the whole owner.
	Owner string
	// Logger. Default: discard.
	Logger *slog.Logger
}

// DefaultHandoffLimit is LockActorConfig.HandoffLimit when unset.
const DefaultHandoffLimit = time.Second

// LockActor serves locks through one backends.Locker. Waiting acquires
// never block the mailbox; the waiters of a name queue in the actor in
// arrival order and a released lease is handed to the next one with one
// backend write where the lease is a backends.Handoffer. The queue and
// hand-off rules are lockQueue's; docs/actors.md explains them.
//
// Leases live in the actor and are named by lease_id; their loss is sent
// as LeaseLost to the request's subscriber. A lease lasts until it is
// released, lost, withdrawn with CancelRequest, or the actor stops. Holders
// are not death-watched: the sender of a request is often a short-lived
// future, and watching one would complete it. Acquire requests without a
// sender are dropped, since nobody could ever learn of (and give back)
// their lease. When the actor stops or restarts it cancels every goroutine
// and waits for them, answers every parked request (CODE_CLOSED when
// stopping, CODE_UNAVAILABLE when restarting), and releases every lease it
// holds (sending LeaseLost with CODE_CLOSED).
type LockActor struct {
	cfg  LockActorConfig
	gate *BackendGate
	log  *slog.Logger
	// keepLeases: when the actor stops, leases that can be adopted
	// (backends.Detacher) are detached, not released (lock grains).
	keepLeases bool

	incarnation

	queues  map[string]*lockQueue  // lock name → its queue and hand-off policy
	waiters map[string]*lockWaiter // request id → waiting acquire
	leases  map[string]*heldLease  // lease id → held lease
	granted map[string]string      // request id → lease id
}

// lockWaiter is a parked AcquireRequest{wait: true}.
type lockWaiter struct {
	requestID  string
	name       string
	opts       backends.LockOptions
	sender     *actor.PID
	subscriber *actor.PID
	deadline   time.Time // zero: no limit
	timer      *time.Timer

	// While in flight:
	cancel    context.CancelFunc
	canceled  bool         // a CancelRequest arrived: give the grant up
	cancelers []*actor.PID // answered once the backend call has returned

	mu        sync.Mutex // the backend call's result, written by its goroutine
	lease     backends.Lease
	err       error
	grantedAt time.Time // when the backend call returned
	claimed   bool      // the result was taken by the actor
}

// result takes the backend call's outcome, once.
func (w *lockWaiter) result() (lease backends.Lease, ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claimed {
		return nil, false, nil
	}
	w.claimed = true
	return w.lease, true, w.err
}

// heldLease is a lease obtained through the actor.
type heldLease struct {
	id         string
	name       string
	requestID  string
	lease      backends.Lease
	subscriber *actor.PID

	// leaving is set while the actor releases or hands off the lease: its
	// Done closing then is no loss to report. told is set once LeaseLost
	// has been sent, by whichever of watchLease and onLeaseEnded is first.
	leaving, told atomic.Bool
	// retrying is set once a failed Release is retried in the background.
	retrying atomic.Bool
}

// Continuation messages sent by the actor's goroutines and timers.
type (
	lockAcquired struct {
		stamp
		w *lockWaiter
	}
	lockWaitExpired struct {
		stamp
		requestID string
	}
	lockLeaseEnded struct {
		stamp
		id string
	}
	lockYieldEnded struct {
		stamp
		name string
	}
)

// NewLockActorProps returns the props of a lock actor. Spawn it with
// SpawnNamed. A restart gives a fresh instance (the old one cleans up in
// Restarting).
func NewLockActorProps(cfg LockActorConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newLockActor(cfg) })
}

// newLockActor applies cfg's defaults and builds a fresh instance.
func newLockActor(cfg LockActorConfig) *LockActor {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.HandoffLimit == 0 {
		cfg.HandoffLimit = DefaultHandoffLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Room for "-" and a generated suffix within backends.MaxNameLen.
	if maxPrefix := backends.MaxNameLen - 32; len(cfg.Owner) > maxPrefix {
		cfg.Owner = cfg.Owner[:maxPrefix]
	}
	return &LockActor{
		incarnation: incarnation{opTimeout: cfg.OpTimeout},
		cfg:         cfg, gate: NewBackendGate(cfg.Backend), log: cfg.Logger,
		queues: map[string]*lockQueue{}, waiters: map[string]*lockWaiter{},
		leases: map[string]*heldLease{}, granted: map[string]string{},
	}
}

// Receive implements actor.Actor.
func (a *LockActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	if a.gate.Handle(ctx, msg) || a.stale(msg) {
		return
	}
	switch m := msg.(type) {
	case *actor.Started:
		a.begin(ctx)
		a.gate.Subscribe(ctx, a.cfg.Supervisor)
	case *actor.Stopping:
		a.shutdown(ctx, fmt.Errorf("lock actor %s stopped: %w", ctx.Self().Id, backends.ErrClosed))
	case *actor.Restarting:
		a.shutdown(ctx, backends.Unavailable("lock actor "+ctx.Self().Id, errors.New("restarted")))

	case *LockSettings:
		if m.DefaultTTL > 0 {
			a.cfg.DefaultTTL = m.DefaultTTL
		}
	case *lockv1.AcquireRequest:
		a.onAcquire(ctx, m)
	case *lockv1.ReleaseRequest:
		a.onRelease(ctx, m)
	case *lockv1.RefreshRequest:
		a.onRefresh(ctx, m)
	case *lockv1.CancelRequest:
		a.onCancel(ctx, m)
	case *lockv1.AdoptRequest:
		a.onAdopt(ctx, m)
	case *lockAcquired:
		a.onAcquired(ctx, m.w)
	case *lockWaitExpired:
		a.onWaitExpired(ctx, m.requestID)
	case *lockLeaseEnded:
		a.onLeaseEnded(ctx, m.id)
	case *lockYieldEnded:
		a.startNext(ctx, m.name)
	case *actor.Stopped:
	default:
		rejectUnknown(ctx, msg)
	}
}

// claimRequestID checks that a requester-chosen id is not in use by a
// waiting acquire or a lease it was granted.
func (a *LockActor) claimRequestID(id string) (string, error) {
	return claimRequestID(id, func(id string) bool {
		_, w := a.waiters[id]
		_, g := a.granted[id]
		return w || g
	})
}

// lockOptions turns a request into validated backend options.
func (a *LockActor) lockOptions(m *lockv1.AcquireRequest) (backends.LockOptions, error) {
	if err := backends.ValidateName("lock name", m.GetName()); err != nil {
		return backends.LockOptions{}, err
	}
	ttl, err := durationOf("ttl", m.GetTtl())
	if err != nil {
		return backends.LockOptions{}, err
	}
	if ttl == 0 {
		ttl = a.cfg.DefaultTTL
	}
	opts, err := backends.LockOptions{TTL: ttl, Owner: m.GetOwner(), AutoRenew: m.GetAutoRenew()}.Validate()
	if err != nil {
		return opts, err
	}
	if opts.Owner == "" && a.cfg.Owner != "" {
		opts.Owner = a.cfg.Owner + "-" + rand.Text()
	}
	return opts, nil
}

func acquireFailed(err error) *lockv1.AcquireResponse {
	return &lockv1.AcquireResponse{Status: statusv1.FromError(err)}
}

func (a *LockActor) onAcquire(ctx actor.Context, m *lockv1.AcquireRequest) {
	if ctx.Sender() == nil {
		// Nobody would learn of the grant: taking the lock would only
		// block others until its TTL.
		a.log.Debug("baton: lock request without sender dropped", "lock", m.GetName())
		return
	}
	if a.cfg.Locker == nil {
		respond(ctx, acquireFailed(fmt.Errorf("lock actor: no locker: %w", backends.ErrNotSupported)))
		return
	}
	opts, err := a.lockOptions(m)
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, acquireFailed(err))
		return
	}
	subscriber := subscriberPID(ctx, m.GetSubscriber())
	name := m.GetName()
	if !m.GetWait() {
		a.tryAcquire(ctx, m, name, opts, subscriber)
		return
	}

	timeout, err := durationOf("timeout", m.GetTimeout())
	var id string
	if err == nil {
		id, err = a.claimRequestID(m.GetRequestId())
	}
	if err != nil {
		respond(ctx, acquireFailed(err))
		return
	}
	w := &lockWaiter{requestID: id, name: name, opts: opts, sender: ctx.Sender(), subscriber: subscriber}
	if timeout > 0 {
		w.deadline = time.Now().Add(timeout)
		w.timer = a.sendAfter(timeout, &lockWaitExpired{stamp: a.stamp(), requestID: id})
	}
	a.waiters[id] = w
	a.queue(name).add(id, w.deadline)
	a.startNext(ctx, name)
}

// tryAcquire serves AcquireRequest{wait: false} from the mailbox.
func (a *LockActor) tryAcquire(ctx actor.Context, m *lockv1.AcquireRequest, name string, opts backends.LockOptions, subscriber *actor.PID) {
	reqID := m.GetRequestId()
	if reqID != "" {
		if _, err := a.claimRequestID(reqID); err != nil {
			respond(ctx, acquireFailed(err))
			return
		}
	}
	if q := a.queues[name]; q != nil && q.busy() {
		respond(ctx, acquireFailed(fmt.Errorf("lock %q: local waiters come first: %w", name, backends.ErrNotObtained)))
		return
	}
	octx, cancel := a.opContext()
	lease, err := a.cfg.Locker.TryAcquire(octx, name, opts)
	err = actorOpError(err)
	cancel()
	if err != nil {
		respond(ctx, acquireFailed(err))
		return
	}
	respond(ctx, &lockv1.AcquireResponse{Status: statusv1.OK(), Lease: a.hold(name, reqID, lease, subscriber, time.Now())})
}

func (a *LockActor) queue(name string) *lockQueue {
	q := a.queues[name]
	if q == nil {
		q = newLockQueue(a.cfg.HandoffLimit, handoffYield)
		a.queues[name] = q
	}
	return q
}

// tidy forgets a queue with nothing in it.
func (a *LockActor) tidy(name string) {
	if q := a.queues[name]; q != nil && q.empty() {
		delete(a.queues, name)
	}
}

// startNext starts the backend Acquire of the next waiter of name when the
// queue lets one run (see lockQueue.next); waiters that cannot run are
// answered on the way. During a yield nothing starts: lockYieldEnded
// comes.
func (a *LockActor) startNext(ctx actor.Context, name string) {
	q := a.queues[name]
	if q == nil {
		return
	}
	for {
		next, ok := q.next(time.Now())
		if !ok {
			break
		}
		w := a.waiters[next.id]
		if w == nil {
			continue
		}
		if err := a.gate.Err(); err != nil {
			a.finishWaiter(ctx, w, acquireFailed(err))
			continue
		}
		if next.expired(time.Now()) {
			a.finishWaiter(ctx, w, acquireFailed(fmt.Errorf("lock %q: acquire: %w", name, context.DeadlineExceeded)))
			continue
		}
		q.start(w.requestID)
		a.run(w)
	}
	a.tidy(name)
}

// run starts w's backend Acquire.
func (a *LockActor) run(w *lockWaiter) {
	var wctx context.Context
	if w.deadline.IsZero() {
		wctx, w.cancel = context.WithCancel(a.life)
	} else {
		wctx, w.cancel = context.WithDeadline(a.life, w.deadline)
	}
	locker, send, st := a.cfg.Locker, a.sender(), a.stamp()
	a.spawn(func() {
		lease, err := locker.Acquire(wctx, w.name, w.opts)
		w.mu.Lock()
		w.lease, w.err, w.grantedAt = lease, err, time.Now()
		w.mu.Unlock()
		send(&lockAcquired{stamp: st, w: w})
	})
}

// finishWaiter answers a waiter that leaves the actor and forgets it.
func (a *LockActor) finishWaiter(ctx actor.Context, w *lockWaiter, resp *lockv1.AcquireResponse) {
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.cancel != nil {
		w.cancel()
	}
	delete(a.waiters, w.requestID)
	ctx.Send(w.sender, resp)
	for _, p := range w.cancelers {
		ctx.Send(p, &lockv1.CancelResponse{Status: statusv1.OK()})
	}
}

// onAcquired handles the end of a head waiter's backend Acquire.
func (a *LockActor) onAcquired(ctx actor.Context, w *lockWaiter) {
	lease, ok, err := w.result()
	if !ok {
		return
	}
	if q := a.queues[w.name]; q != nil {
		q.acquireEnded(w.requestID)
	}
	switch {
	case w.canceled:
		if lease != nil {
			// Nobody will use this grant: pass it on like a release.
			h := &heldLease{id: newHandle(), name: w.name, lease: lease}
			a.leases[h.id] = h
			a.queue(w.name).holdUnused(h.id)
			_ = a.leave(ctx, h, true)
		}
		a.finishWaiter(ctx, w, acquireFailed(withdrawn("lock", w.name)))
	case err != nil:
		a.finishWaiter(ctx, w, acquireFailed(err))
	default:
		a.finishWaiter(ctx, w, &lockv1.AcquireResponse{Status: statusv1.OK(), Lease: a.hold(w.name, w.requestID, lease, w.subscriber, w.grantedAt)})
	}
	a.startNext(ctx, w.name)
}

// giveUp releases a lease nobody will use.
func (a *LockActor) giveUp(ctx context.Context, lease backends.Lease) {
	if err := lease.Release(ctx); err != nil && !errors.Is(err, backends.ErrNotHeld) {
		a.log.Warn("baton: release of an abandoned lease failed", "lock", lease.Name(), "err", err)
	}
}

func (a *LockActor) onWaitExpired(ctx actor.Context, id string) {
	w := a.waiters[id]
	if w == nil || w.cancel != nil {
		return // answered already, or running: its context has the deadline
	}
	a.unqueue(w)
	a.finishWaiter(ctx, w, acquireFailed(fmt.Errorf("lock %q: acquire: %w", w.name, context.DeadlineExceeded)))
	a.tidy(w.name)
}

// unqueue removes a waiter that is not running from its queue.
func (a *LockActor) unqueue(w *lockWaiter) {
	if q := a.queues[w.name]; q != nil {
		q.remove(w.requestID)
	}
}

// hold records a lease obtained from the backend (not by a hand-off) and
// watches it for loss; see record.
func (a *LockActor) hold(name, requestID string, lease backends.Lease, subscriber *actor.PID, grantedAt time.Time) *lockv1.Lease {
	granted := a.record(name, requestID, lease, subscriber, grantedAt)
	a.queue(name).hold(granted.GetLeaseId(), time.Now())
	return granted
}

// record keeps a granted lease in the actor and watches it for loss; the
// caller tells the queue. grantedAt is when the backend call that granted
// it returned (zero for an adopted lease, whose expiry the holder already
// knows).
func (a *LockActor) record(name, requestID string, lease backends.Lease, subscriber *actor.PID, grantedAt time.Time) *lockv1.Lease {
	id := newHandle()
	h := &heldLease{id: id, name: name, requestID: requestID, lease: lease, subscriber: subscriber}
	a.leases[id] = h
	if requestID != "" {
		a.granted[requestID] = id
	}
	a.watchLease(h)
	granted := &lockv1.Lease{
		Name: name, Owner: lease.Owner(), Ttl: durationpb.New(lease.TTL()),
		Token: lease.Token(), LeaseId: id,
	}
	if d, ok := lease.(backends.Detacher); ok {
		granted.Handle = d.Record().Handle
	}
	if !grantedAt.IsZero() {
		granted.TtlLeft = durationpb.New(max(lease.TTL()-time.Since(grantedAt), 0))
	}
	return granted
}

// watchLease waits for h's lease to end. A lease that ends while the actor
// is not giving it up was lost, and its holder is told at once from here,
// not from the mailbox: the actor may be inside a backend call that waits
// for up to OpTimeout on a backend it cannot reach (the very fault that
// lost the lease), and a holder told only afterwards would go on using a
// lock the backend has meanwhile granted to someone else. The actor then
// hears of it too (lockLeaseEnded), to drop the lease and serve the queue.
func (a *LockActor) watchLease(h *heldLease) {
	life, root, self := a.life, a.root, a.self
	ended := &lockLeaseEnded{stamp: a.stamp(), id: h.id}
	a.spawn(func() {
		select {
		case <-h.lease.Done():
		case <-life.Done():
			return
		}
		if !h.leaving.Load() {
			tellLost(root, h)
		}
		root.Send(self, ended)
	})
}

// tellLost sends h's holder LeaseLost, once.
func tellLost(sender actor.SenderContext, h *heldLease) {
	if h.told.CompareAndSwap(false, true) {
		sender.Send(h.subscriber, &lockv1.LeaseLost{Name: h.name, LeaseId: h.id, Cause: statusv1.FromError(
			fmt.Errorf("lock %q: lease expired or taken over: %w", h.name, backends.ErrNotHeld))})
	}
}

// onAdopt takes over a lease granted by another lock actor (a grain that
// moved or stopped), verified in the backend; it is then held here like a
// lease granted here, with a new lease id.
func (a *LockActor) onAdopt(ctx actor.Context, m *lockv1.AdoptRequest) {
	adopter, ok := a.cfg.Locker.(backends.Adopter)
	if !ok {
		respond(ctx, &lockv1.AdoptResponse{Status: statusv1.FromError(fmt.Errorf("lock actor: the locker cannot adopt leases: %w", backends.ErrNotSupported))})
		return
	}
	l := m.GetLease()
	ttl, err := durationOf("ttl", l.GetTtl())
	rec := backends.LeaseRecord{Name: l.GetName(), Owner: l.GetOwner(), Token: l.GetToken(), TTL: ttl, Handle: l.GetHandle()}
	if err == nil {
		err = rec.Validate()
	}
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, &lockv1.AdoptResponse{Status: statusv1.FromError(err)})
		return
	}
	for _, h := range a.leases {
		if h.name == rec.Name && h.lease.Token() == rec.Token && h.lease.Owner() == rec.Owner {
			// Held here already (the connection to the holder broke and
			// came back): the same lease, for the holder that asks now.
			h.subscriber = subscriberPID(ctx, m.GetSubscriber())
			respond(ctx, &lockv1.AdoptResponse{Status: statusv1.OK(), Lease: &lockv1.Lease{
				Name: h.name, Owner: h.lease.Owner(), Ttl: durationpb.New(h.lease.TTL()),
				Token: h.lease.Token(), LeaseId: h.id, Handle: rec.Handle,
			}})
			return
		}
	}
	octx, cancel := a.opContext()
	lease, err := adopter.Adopt(octx, rec, false)
	cancel()
	if err = actorOpError(err); err != nil {
		respond(ctx, &lockv1.AdoptResponse{Status: statusv1.FromError(err)})
		return
	}
	held := a.hold(rec.Name, "", lease, subscriberPID(ctx, m.GetSubscriber()), time.Time{})
	respond(ctx, &lockv1.AdoptResponse{Status: statusv1.OK(), Lease: held})
}

// drop forgets a lease that ended.
func (a *LockActor) drop(h *heldLease) {
	delete(a.leases, h.id)
	if h.requestID != "" && a.granted[h.requestID] == h.id {
		delete(a.granted, h.requestID)
	}
	if q := a.queues[h.name]; q != nil {
		q.release(h.id)
	}
}

// lookupLease finds a lease by id; a name, when given, must match.
func (a *LockActor) lookupLease(name, id string) (*heldLease, error) {
	h := a.leases[id]
	if h == nil || (name != "" && name != h.name) {
		return nil, fmt.Errorf("lock %q: lease %q: %w", name, id, backends.ErrNotHeld)
	}
	return h, nil
}

func (a *LockActor) onRelease(ctx actor.Context, m *lockv1.ReleaseRequest) {
	h, err := a.lookupLease(m.GetName(), m.GetLeaseId())
	if err != nil {
		respond(ctx, &lockv1.ReleaseResponse{Status: statusv1.FromError(err)})
		return
	}
	if err := a.gate.Err(); err != nil {
		a.releaseInBackground(h)
		respond(ctx, &lockv1.ReleaseResponse{Status: statusv1.FromError(err)})
		return
	}
	// The lock goes to the next local waiter before the releaser is
	// answered: that is the latency that matters.
	err = a.leave(ctx, h, false)
	respond(ctx, &lockv1.ReleaseResponse{Status: statusv1.FromError(err)})
}

// leave ends the holder h: its lease is handed straight to the next local
// waiter of the lock when there is one and the lease is a
// backends.Handoffer (one backend write, the lock never free in between),
// and released on the backend otherwise. When that succeeds, or the lease
// was lost anyway, h is dropped and the queue moves on. Other errors are
// returned with h still recorded, so its holder can release again — unless
// gone is set: the holder is gone and will not retry, so h is dropped
// whatever happens and the release is retried in the background until it
// succeeds or the lease is over (an auto-renewed lease would otherwise stay
// held for good).
func (a *LockActor) leave(ctx actor.Context, h *heldLease, gone bool) error {
	h.leaving.Store(true)
	if w := a.handoffTarget(ctx, h); w != nil {
		err := a.handoff(ctx, h, w)
		if err == nil {
			return nil
		}
		if errors.Is(err, backends.ErrNotHeld) {
			return a.left(ctx, h, gone, err)
		}
		// Refused with nothing changed (etcd: a contender queues in etcd
		// itself and must not be overtaken), or failed with an unknown
		// outcome (any grant it made was given back, and the lease may be
		// gone): release as usual, which also tells which it was.
		a.log.Debug("baton: lock hand-off not done, releasing", "lock", h.name, "err", err)
	}
	octx, cancel := a.opContext()
	err := actorOpError(h.lease.Release(octx))
	cancel()
	return a.left(ctx, h, gone, err)
}

// left finishes leave after the backend call answered err.
func (a *LockActor) left(ctx actor.Context, h *heldLease, gone bool, err error) error {
	if err != nil && !errors.Is(err, backends.ErrNotHeld) && !gone {
		h.leaving.Store(false) // still held: a loss from now on is reported again
		a.releaseInBackground(h)
		return err
	}
	if err != nil && !errors.Is(err, backends.ErrNotHeld) {
		a.log.Warn("baton: release for a holder that is gone failed; retrying", "lock", h.name, "err", err)
		a.giveUpLater(h.lease.Done(), h.lease.Release)
	}
	a.drop(h)
	a.startNext(ctx, h.name)
	a.tidy(h.name)
	return err
}

// releaseInBackground keeps releasing h's lease after a Release its holder
// was answered an error for (the backend unreachable, or the call timed
// out): h stays recorded, so the holder may release again, but a holder
// that walks away does not leave the lock held by an auto-renewed lease.
// When the background release succeeds the lease's Done closes and the
// holder is told the lease is over, as for any lease that ends.
func (a *LockActor) releaseInBackground(h *heldLease) {
	if h.retrying.CompareAndSwap(false, true) {
		a.giveUpLater(h.lease.Done(), h.lease.Release)
	}
}

// handoffTarget returns the waiter h's lease can be handed to, when the
// lease can be handed off at all (a backends.Handoffer, with the backend
// up) and the queue picks one (see lockQueue.handoffTarget). Waiters whose
// deadline passed on the way are answered. When the hand-off chain has run
// for HandoffLimit, nobody is picked and lockYieldEnded lets the local
// waiters acquire again after the yield.
func (a *LockActor) handoffTarget(ctx actor.Context, h *heldLease) *lockWaiter {
	q := a.queues[h.name]
	if q == nil {
		return nil
	}
	if _, ok := h.lease.(backends.Handoffer); !ok || a.gate.Err() != nil {
		return nil
	}
	target, expired, yield := q.handoffTarget(h.id, time.Now())
	for _, id := range expired {
		if w := a.waiters[id]; w != nil {
			a.finishWaiter(ctx, w, acquireFailed(fmt.Errorf("lock %q: acquire: %w", w.name, context.DeadlineExceeded)))
		}
	}
	if yield {
		a.sendAfter(handoffYield, &lockYieldEnded{stamp: a.stamp(), name: h.name})
	}
	if target == "" {
		return nil
	}
	return a.waiters[target]
}

// handoff passes h's lease to w, the head of its queue, and answers w with
// the new lease.
func (a *LockActor) handoff(ctx actor.Context, h *heldLease, w *lockWaiter) error {
	// Not bounded by w's deadline: a hand-off cut short might have been
	// done. A grant that arrives after its requester gave up is withdrawn by
	// the requester's CancelRequest and handed on from there.
	octx, cancel := a.opContext()
	defer cancel()
	next, err := h.lease.(backends.Handoffer).Handoff(octx, w.opts)
	if err != nil {
		return actorOpError(err)
	}
	a.drop(h)
	granted := a.record(w.name, w.requestID, next, w.subscriber, time.Now())
	a.queues[h.name].handedOff(w.requestID, granted.GetLeaseId())
	a.finishWaiter(ctx, w, &lockv1.AcquireResponse{Status: statusv1.OK(), Lease: granted})
	return nil
}

func (a *LockActor) onRefresh(ctx actor.Context, m *lockv1.RefreshRequest) {
	ttl, err := durationOf("ttl", m.GetTtl())
	var h *heldLease
	if err == nil {
		h, err = a.lookupLease(m.GetName(), m.GetLeaseId())
	}
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, &lockv1.RefreshResponse{Status: statusv1.FromError(err)})
		return
	}
	octx, cancel := a.opContext()
	err = actorOpError(h.lease.Refresh(octx, ttl))
	cancel()
	if errors.Is(err, backends.ErrNotHeld) {
		// The requester learns it from this answer; no LeaseLost follows.
		a.drop(h)
		a.startNext(ctx, h.name)
		a.tidy(h.name)
	}
	resp := &lockv1.RefreshResponse{Status: statusv1.FromError(err)}
	if err == nil {
		resp.Ttl = durationpb.New(h.lease.TTL()) // as the backend rounded it
	}
	respond(ctx, resp)
}

// onLeaseEnded handles a lease whose Done closed. A lease still recorded
// was not released through the actor: it was lost.
func (a *LockActor) onLeaseEnded(ctx actor.Context, id string) {
	h := a.leases[id]
	if h == nil {
		return
	}
	a.drop(h)
	tellLost(ctx, h)
	a.startNext(ctx, h.name)
	a.tidy(h.name)
}

// onCancel withdraws a waiting acquire, or gives up what it was granted.
func (a *LockActor) onCancel(ctx actor.Context, m *lockv1.CancelRequest) {
	id := m.GetRequestId()
	ok := &lockv1.CancelResponse{Status: statusv1.OK()}
	if w := a.waiters[id]; w != nil {
		if w.cancel != nil {
			// Running: the answer waits until the backend call has
			// returned, so that nothing of it is left when it arrives.
			w.canceled = true
			w.cancelers = append(w.cancelers, ctx.Sender())
			w.cancel()
			return
		}
		a.unqueue(w)
		a.finishWaiter(ctx, w, acquireFailed(withdrawn("lock", w.name)))
		a.tidy(w.name)
		respond(ctx, ok)
		return
	}
	if g, found := a.granted[id]; found {
		if h := a.leases[g]; h != nil {
			_ = a.leave(ctx, h, true)
		}
	}
	respond(ctx, ok)
}

// reset ends this incarnation as shutdown does and starts a fresh one in
// place: same PID, same connector gate. A lock grain resets after its
// process did not run for a while (see LockGrainReset).
func (a *LockActor) reset(ctx actor.Context, cause error) {
	a.shutdown(ctx, cause)
	a.waiters = map[string]*lockWaiter{}
	a.renew()
}

// shutdown ends this incarnation: every goroutine is cancelled and waited
// for, every parked request is answered with cause, every grant is given
// back and its holder told.
func (a *LockActor) shutdown(ctx actor.Context, cause error) {
	if !a.started() {
		return
	}
	a.end() // late continuations are stale from here on
	// One bound for all the give-backs: a dead backend must not hold the
	// shutdown for OpTimeout per grant.
	octx, cancel := context.WithTimeout(context.Background(), a.cfg.OpTimeout)
	defer cancel()

	for _, w := range a.waiters {
		if w.cancel != nil {
			// The backend call returned (we waited); a grant is given back.
			if lease, ok, _ := w.result(); ok && lease != nil {
				a.giveUp(octx, lease)
			}
		}
		resp := acquireFailed(fmt.Errorf("lock %q: %w", w.name, cause))
		if w.canceled {
			resp = acquireFailed(withdrawn("lock", w.name))
		}
		w.cancel = nil // already cancelled; keep finishWaiter from re-running it
		a.finishWaiter(ctx, w, resp)
	}
	a.queues = map[string]*lockQueue{}
	closed := statusv1.FromError(fmt.Errorf("lock actor: %w", backends.ErrClosed))
	for _, h := range a.leases {
		if d, ok := h.lease.(backends.Detacher); ok && a.keepLeases {
			// A grain that moves: the holder keeps its lease and takes it
			// to the grain's next activation (AdoptRequest); nothing is
			// given up. A restarted grain (same PID, no record of the
			// lease) tells the holder, and the lock expires by its TTL.
			d.Detach()
			if !errors.Is(cause, backends.ErrClosed) {
				ctx.Send(h.subscriber, &lockv1.LeaseLost{Name: h.name, LeaseId: h.id, Cause: statusv1.FromError(cause)})
			}
			continue
		}
		a.giveUp(octx, h.lease)
		ctx.Send(h.subscriber, &lockv1.LeaseLost{Name: h.name, LeaseId: h.id, Cause: closed})
	}
	a.leases = map[string]*heldLease{}
	a.granted = map[string]string{}
}
