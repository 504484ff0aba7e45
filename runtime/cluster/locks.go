package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// LockClient is the cluster's backends.Locker: every lock name is one lock
// grain somewhere in the cluster, so the waiters of all nodes queue in one
// FIFO and a release hands the lock to the next of them directly. The backend lease and its fencing token stay the
// source of truth.
//
// When the grain of a name moves (the topology changed), its member dies
// or stops answering, waiting Acquires are re-sent to the grain's new
// place; the FIFO order among them is then their order of arrival there.
// Held leases are never given up by a move: the grain that stops leaves
// them held in the backend, and each holder's lease moves to the grain's
// next activation, which adopts it from the backend (same token, same
// expiry). Release and Refresh wait for the move. Only when the backend no
// longer holds a lease (it expired meanwhile) does its Done close.
//
// Every lease has a local deadline that is never later than the backend's
// expiry — from when the Acquire was sent, or for a wait, from the grant's
// answer with what the grain says was left, less a margin of 5ms + 1% of the
// TTL — and Done closes there unless a Refresh (sent before it) succeeded:
// a holder learns that its lease is over even when its grain cannot tell
// it (paused, cut off). Auto-renewed leases are renewed by the facade, at
// TTL/3, not by the grain: a holder cut off from its grain stops renewing,
// and its Done closes before the backend lets anyone else in.
//
// A Locks facade is a process of its own for the grains: they death-watch
// it, and release its leases and withdraw its waits when it closes or its
// node goes away.
type LockClient struct {
	n    *Node
	ns   backends.Namespace
	self *actor.PID // receives LeaseLost; death-watches granting grains

	cleanups sync.WaitGroup  // clean-up requests to grains reported gone, moves
	life     context.Context // ends on Close and Abandon
	endLife  context.CancelFunc

	mu     sync.Mutex
	closed bool
	leases map[string]*lease // lease id → lease
	lost   map[string]bool   // leases reported lost before their grant was read
	grains map[string]*grainRefs
}

// grainRefs is what the facade has in one grain: leases, and waits in
// flight (cancelled when the grain dies: its answer would never come).
type grainRefs struct {
	pid    *actor.PID
	leases int
	waits  map[*waitRef]struct{}
}

type waitRef struct {
	requestID string
	cancel    context.CancelFunc
	gone      bool // set (under Locks.mu) when the grain was reported gone
}

var (
	_ backends.Locker = (*LockClient)(nil)
	_ backends.Lease  = (*lease)(nil)
)

// Facade tuning.
const (
	// cleanupTimeout bounds the clean-up requests the facade sends on its
	// own (withdrawing an abandoned wait, releases on Close).
	cleanupTimeout = 5 * time.Second
	// farFuture stands for "no deadline" on a waiting acquire.
	farFuture = 100 * 365 * 24 * time.Hour
)

func newLocks(n *Node, ns backends.Namespace) (*LockClient, error) {
	l := &LockClient{n: n, ns: ns.WithDefaults(), leases: map[string]*lease{}, lost: map[string]bool{}, grains: map[string]*grainRefs{}}
	root := n.system.Root
	pid, err := root.SpawnNamed(actor.PropsFromFunc(l.receive), "baton-cluster-locks-"+randomID())
	if err != nil {
		return nil, backends.Unavailable("cluster: locks", err)
	}
	l.self = pid
	l.life, l.endLife = context.WithCancel(context.Background())
	if p := n.provider; p != nil {
		l.cleanups.Go(func() { l.followTopology(p) })
	}
	return l, nil
}

// followTopology reports the grains whose member left the topology as
// lost: a member that is paused or cut off is dropped by the membership
// long before its connection breaks, and its grains are activated
// elsewhere meanwhile.
func (l *LockClient) followTopology(p *provider) {
	for {
		ch := p.Changed()
		live := map[string]bool{l.n.Address(): true}
		for _, m := range p.Members() {
			live[m.Address] = true
		}
		var lost []*actor.PID
		l.mu.Lock()
		for _, g := range l.grains {
			if !live[g.pid.GetAddress()] {
				lost = append(lost, g.pid)
			}
		}
		l.mu.Unlock()
		for _, pid := range lost {
			l.n.system.Root.Send(l.self, &grainLost{pid: pid})
		}
		select {
		case <-ch:
		case <-l.life.Done():
			return
		}
	}
}

// lockGrainIdentity is the identity of name's grain.
func (l *LockClient) identity(name string) string { return lockIdentity(l.ns, name) }

// Acquire implements backends.Locker: it waits in the grain's queue until
// the lock is granted or ctx ends (the wait is then withdrawn and the
// wrapped ctx.Err() returned).
func (l *LockClient) Acquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return l.acquire(ctx, "cluster: lock acquire", name, opts, true)
}

// TryAcquire implements backends.Locker: ErrNotObtained at once when the
// lock is held or waiters are queued for it anywhere in the cluster.
func (l *LockClient) TryAcquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return l.acquire(ctx, "cluster: lock try acquire", name, opts, false)
}

func (l *LockClient) usable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("locks: %w", backends.ErrClosed)
	}
	return nil
}

func (l *LockClient) acquire(ctx context.Context, op, name string, opts backends.LockOptions, wait bool) (backends.Lease, error) {
	if err := backends.ValidateName("lock name", name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := l.usable(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, name, err)
	}
	if opts.Owner == "" && len(l.n.nodeID) <= backends.MaxNameLen-32 {
		opts.Owner = l.n.nodeID + "-" + rand.Text()
	}
	identity := l.identity(name)
	for attempt := 1; ; attempt++ {
		pid, err := l.n.resolver.resolve(ctx, KindLock, identity)
		if err != nil {
			if ctx.Err() != nil {
				return nil, gaveUp(ctx, op, name)
			}
			if !wait && attempt >= 3 {
				return nil, fmt.Errorf("%s %q: %w", op, name, err)
			}
			if !sleepCtx(ctx, retryDelay(attempt)) {
				return nil, gaveUp(ctx, op, name)
			}
			continue
		}
		req := &lockv1.AcquireRequest{
			// The facade renews auto-renewed leases itself (see renew): a
			// grain renewing on a holder's behalf would keep a lease alive
			// that its holder, cut off from the grain, believes lost.
			Name: name, Owner: opts.Owner, Wait: wait,
			RequestId: rand.Text(), Subscriber: actors.SubscriberOf(l.self),
		}
		if opts.TTL != 0 {
			req.Ttl = durationpb.New(opts.TTL)
		}
		rctx, w := l.track(ctx, pid, req.RequestId)
		sent := time.Now()
		resp, err := grantRequest(rctx, l.n.system.Root, pid, req, wait)
		gone := l.untrack(pid, w)
		if err == nil {
			return l.granted(op, name, pid, resp.GetLease(), sent, wait, opts.AutoRenew)
		}
		retry := wait || attempt < 3 // a try does not wait long for a moving grain
		if gone && ctx.Err() == nil {
			// The grain died with the request in it: nothing is left there.
			l.n.resolver.forget(KindLock, identity, pid)
			if !retry {
				return nil, backends.Unavailable(fmt.Sprintf("%s %q", op, name), errors.New("the lock's grain stopped"))
			}
			if !sleepCtx(ctx, retryDelay(attempt)) {
				return nil, gaveUp(ctx, op, name)
			}
			continue
		}
		if ctx.Err() != nil || (resp == nil && !errors.Is(err, backends.ErrUnavailable)) {
			// No answer within ctx: the grain may still hold the wait, or
			// have granted it. Withdraw it and wait for the confirmation.
			return nil, l.withdraw(ctx, op, name, pid, req.RequestId, err)
		}
		if !movedGrain(resp, err) || !retry {
			return nil, fmt.Errorf("%s %q: %w", op, name, err)
		}
		// The grain was not there (dead letter) or stopped while we
		// waited: find its new place and queue again.
		l.n.resolver.forget(KindLock, identity, pid)
		if !sleepCtx(ctx, retryDelay(attempt)) {
			return nil, gaveUp(ctx, op, name)
		}
	}
}

// gaveUp is the error of an acquire whose ctx ended: it did not get the
// lock (ErrNotObtained), and why (ctx.Err()).
func gaveUp(ctx context.Context, op, name string) error {
	return fmt.Errorf("%s %q: %w: %w", op, name, backends.ErrNotObtained, ctx.Err())
}

// movedGrain reports whether an acquire failed because its grain is gone:
// no actor answered (dead letter), or the grain stopped while the request
// waited in it (CODE_CLOSED from the grain, not from this facade).
func movedGrain(resp *lockv1.AcquireResponse, err error) bool {
	if resp == nil {
		return errors.Is(err, backends.ErrUnavailable)
	}
	return resp.GetStatus().GetCode() == statusv1.Code_CODE_CLOSED
}

func retryDelay(attempt int) time.Duration {
	return components.Backoff{Initial: 20 * time.Millisecond, Max: time.Second}.Delay(attempt)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// grantRequest sends an acquire and waits for its answer; a waiting
// acquire carries ctx's deadline so the grain gives up at the same time.
func grantRequest(ctx context.Context, root *actor.RootContext, pid *actor.PID, req *lockv1.AcquireRequest, wait bool) (*lockv1.AcquireResponse, error) {
	if wait {
		if dl, ok := ctx.Deadline(); ok {
			req.Timeout = durationpb.New(max(time.Until(dl), time.Nanosecond))
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, farFuture)
			defer cancel()
		}
	}
	return actors.Request[*lockv1.AcquireResponse](ctx, root, pid, req)
}

// withdraw cleans up after an acquire that got no answer: the wait is
// withdrawn in the background (a grant that raced it is given back there),
// so the caller returns by its own deadline; Close waits for it.
func (l *LockClient) withdraw(ctx context.Context, op, name string, pid *actor.PID, requestID string, err error) error {
	root := l.n.system.Root
	l.cleanups.Go(func() {
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_, _ = actors.Request[*lockv1.CancelResponse](cctx, root, pid, &lockv1.CancelRequest{RequestId: requestID})
	})
	if ctx.Err() != nil {
		return gaveUp(ctx, op, name)
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}

// granted records a lease granted by grain pid in answer to a request sent
// at sent. The lease's local deadline is set no later than the backend can
// expire it: for a request that did not wait, sent + TTL (the backend
// granted after sent); for one that waited, the arrival of the answer plus
// what the grain says is left of the TTL, less a margin for the answer's
// time on the wire.
func (l *LockClient) granted(op, name string, pid *actor.PID, m *lockv1.Lease, sent time.Time, waited, autoRenew bool) (backends.Lease, error) {
	ls := &lease{
		l: l, grain: pid, name: m.GetName(), owner: m.GetOwner(), ttl: m.GetTtl().AsDuration(),
		token: m.GetToken(), id: m.GetLeaseId(), handle: m.GetHandle(), done: make(chan struct{}),
	}
	deadline := sent.Add(ls.ttl)
	if waited {
		left := ls.ttl
		if m.GetTtlLeft() != nil {
			left = min(m.GetTtlLeft().AsDuration(), ls.ttl)
		}
		deadline = time.Now().Add(left - deadlineMargin(ls.ttl))
	}
	ls.expireAt(deadline)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.releaseQuietly(ls)
		return nil, fmt.Errorf("%s %q: locks: %w", op, name, backends.ErrClosed)
	}
	if l.lost[ls.id] {
		delete(l.lost, ls.id)
		l.mu.Unlock()
		ls.end()
		return ls, nil
	}
	l.leases[ls.id] = ls
	l.refs(pid).leases++
	l.mu.Unlock()
	if autoRenew {
		l.cleanups.Go(func() { ls.renew() })
	}
	return ls, nil
}

// deadlineMargin is what a holder's local deadline keeps in hand for an
// answer's time on the wire: 5ms plus 1% of the TTL.
func deadlineMargin(ttl time.Duration) time.Duration { return 5*time.Millisecond + ttl/100 }

// expireAt (re)sets the lease's local deadline: Done closes then unless
// it is refreshed first, whether or not its grain could say so.
func (ls *lease) expireAt(deadline time.Time) {
	ls.ttlMu.Lock()
	defer ls.ttlMu.Unlock()
	if ls.ended() {
		return
	}
	if ls.expiry == nil {
		ls.expiry = time.AfterFunc(time.Until(deadline), func() { ls.l.forget(ls) })
		return
	}
	ls.expiry.Reset(time.Until(deadline))
}

// renew refreshes an auto-renewed lease every TTL/3 until it ends or the
// facade closes. A refresh that fails without the lease being lost is
// retried at the next tick; if none succeeds before the local deadline,
// the lease ends there.
func (ls *lease) renew() {
	for {
		every := max(ls.TTL()/3, 10*time.Millisecond)
		t := time.NewTimer(every)
		select {
		case <-ls.done:
			t.Stop()
			return
		case <-ls.l.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(ls.l.life, every)
		err := ls.Refresh(ctx, 0)
		cancel()
		if errors.Is(err, backends.ErrNotHeld) || errors.Is(err, backends.ErrClosed) {
			return
		}
	}
}

// refs returns the record of a grain, watching it when it is new; l.mu is
// held.
func (l *LockClient) refs(pid *actor.PID) *grainRefs {
	key := pidKey(pid)
	g := l.grains[key]
	if g == nil {
		g = &grainRefs{pid: pid, waits: map[*waitRef]struct{}{}}
		l.grains[key] = g
		l.n.system.Root.Send(l.self, &watchGrain{pid: pid})
	}
	return g
}

// idleWatchMax is how many grains the facade keeps watching while it has
// nothing in them: re-watching on every acquire would cost two messages to
// the grain's member per acquisition.
const idleWatchMax = 256

// tidyRefs stops watching idle grains once there are too many; l.mu is
// held.
func (l *LockClient) tidyRefs(*grainRefs) {
	if len(l.grains) <= idleWatchMax {
		return
	}
	for key, g := range l.grains {
		if g.leases <= 0 && len(g.waits) == 0 {
			delete(l.grains, key)
			l.n.system.Root.Send(l.self, &unwatchGrain{pid: g.pid})
		}
	}
}

// track registers a request about to wait in grain pid; the returned
// context ends when the grain is reported gone.
func (l *LockClient) track(ctx context.Context, pid *actor.PID, requestID string) (context.Context, *waitRef) {
	rctx, cancel := context.WithCancel(ctx)
	w := &waitRef{requestID: requestID, cancel: cancel}
	l.mu.Lock()
	l.refs(pid).waits[w] = struct{}{}
	l.mu.Unlock()
	return rctx, w
}

// untrack ends a tracked request and reports whether its grain died.
func (l *LockClient) untrack(pid *actor.PID, w *waitRef) bool {
	l.mu.Lock()
	if g := l.grains[pidKey(pid)]; g != nil {
		delete(g.waits, w)
		l.tidyRefs(g)
	}
	gone := w.gone
	l.mu.Unlock()
	w.cancel()
	return gone
}

func pidKey(p *actor.PID) string { return p.GetAddress() + "/" + p.GetId() }

// watchGrain and unwatchGrain ask the facade's actor to (stop to)
// death-watch a grain it has leases or waits in.
type (
	watchGrain   struct{ pid *actor.PID }
	unwatchGrain struct{ pid *actor.PID }
)

// receive is the facade's actor: lease losses and grain deaths.
func (l *LockClient) receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *watchGrain:
		c.Watch(m.pid)
	case *unwatchGrain:
		c.Unwatch(m.pid)
	case *lockv1.LeaseLost:
		l.mu.Lock()
		ls := l.leases[m.GetLeaseId()]
		if ls == nil {
			if len(l.lost) < 1024 {
				l.lost[m.GetLeaseId()] = true
			}
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		l.forget(ls)
	case *actor.Terminated:
		l.grainGone(m.Who)
	case *grainLost:
		l.grainGone(m.pid)
	}
}

// grainGone handles a grain that stopped, whose member left the topology
// or whose connection broke: waits in it are sent again to the grain's new
// place (their requests end here) and withdrawn there in case it lives on;
// leases in it move to the grain's next activation (see move).
func (l *LockClient) grainGone(grain *actor.PID) {
	{
		key := pidKey(grain)
		l.mu.Lock()
		var gone []*lease
		for _, ls := range l.leases {
			if pidKey(ls.grain) == key && ls.handle != "" {
				l.move(ls, grain)
			} else if pidKey(ls.grain) == key {
				gone = append(gone, ls)
			}
		}
		var withdrawn []string
		if g := l.grains[key]; g != nil {
			for w := range g.waits {
				w.gone = true
				w.cancel()
				withdrawn = append(withdrawn, w.requestID)
			}
			delete(l.grains, key)
		}
		l.mu.Unlock()
		for _, ls := range gone {
			l.forget(ls)
		}
		// Terminated also comes when only the connection to the grain's
		// member broke: the grain may live on, holding these waits (and
		// leases that cannot move) for nobody. Withdraw and release them
		// there, in case.
		l.cleanup(grain, withdrawn, gone)
	}
}

// grainLost is sent to the facade's actor when a grain's member left the
// topology: the grain may be paused or cut off rather than stopped, so no
// Terminated may come for a long time.
type grainLost struct{ pid *actor.PID }

// move takes ls to the next activation of its grain, which adopts it from
// the backend (lockv1.AdoptRequest): the lease stays held all along and
// keeps its token. Release and Refresh wait for the move. When the backend
// no longer holds the lease, or no grain adopts it within its TTL, the
// lease is over (Done closes). l.mu is held.
func (l *LockClient) move(ls *lease, from *actor.PID) {
	if ls.moving != nil || l.closed {
		return
	}
	mv := make(chan struct{})
	ls.moving = mv
	for c := range ls.calls {
		(*c)()
	}
	oldID := ls.id
	l.n.log.Debug("baton: lock lease moving to the grain's next activation", "lock", ls.name, "token", ls.token, "from", pidKey(from))
	l.cleanups.Go(func() {
		start := time.Now()
		ok := l.adopt(ls, from, oldID)
		l.n.log.Debug("baton: lock lease moved", "lock", ls.name, "token", ls.token, "adopted", ok, "took", time.Since(start))
		l.mu.Lock()
		ls.moving = nil
		l.mu.Unlock()
		close(mv)
		if !ok {
			l.forget(ls)
		}
	})
}

// adopt asks the grain's current activation to adopt ls, retrying while
// the grain is being placed, for at most the lease's TTL.
func (l *LockClient) adopt(ls *lease, from *actor.PID, oldID string) bool {
	ctx, cancel := context.WithTimeout(l.life, ls.TTL())
	defer cancel()
	identity := l.identity(ls.name)
	root := l.n.system.Root
	for attempt := 1; ; attempt++ {
		l.n.resolver.forget(KindLock, identity, from)
		pid, err := l.n.resolver.resolve(ctx, KindLock, identity)
		if err == nil {
			resp, err := actors.Request[*lockv1.AdoptResponse](ctx, root, pid,
				&lockv1.AdoptRequest{Lease: ls.message(oldID), Subscriber: actors.SubscriberOf(l.self)})
			if err == nil {
				return l.rekey(ls, pid, resp.GetLease().GetLeaseId())
			}
			if errors.Is(err, backends.ErrNotHeld) || errors.Is(err, backends.ErrInvalidArgument) || errors.Is(err, backends.ErrNotSupported) {
				return false
			}
			from = pid
		}
		select {
		case <-ls.done:
			return false
		default:
		}
		if !sleepCtx(ctx, retryDelay(attempt)) {
			return false
		}
	}
}

// rekey records that ls now lives in grain pid under id; false when it was
// reported lost there before its id was known (the caller ends it).
func (l *LockClient) rekey(ls *lease, pid *actor.PID, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases[ls.id] == ls {
		delete(l.leases, ls.id)
		if g := l.grains[pidKey(ls.grain)]; g != nil {
			g.leases--
		}
	}
	ls.grain, ls.id = pid, id
	if l.lost[id] {
		delete(l.lost, id)
		return false
	}
	l.leases[id] = ls
	l.refs(pid).leases++
	return true
}

// cleanup withdraws waits and releases leases in a grain reported gone,
// best-effort and bounded; Close waits for it.
func (l *LockClient) cleanup(grain *actor.PID, requestIDs []string, leases []*lease) {
	if len(requestIDs) == 0 && len(leases) == 0 {
		return
	}
	root := l.n.system.Root
	l.cleanups.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		for _, id := range requestIDs {
			_, _ = actors.Request[*lockv1.CancelResponse](ctx, root, grain, &lockv1.CancelRequest{RequestId: id})
		}
		for _, ls := range leases {
			_, _ = actors.Request[*lockv1.ReleaseResponse](ctx, root, grain, &lockv1.ReleaseRequest{Name: ls.name, LeaseId: ls.id})
		}
	})
}

// forget ends a lease that is no longer held.
func (l *LockClient) forget(ls *lease) {
	l.mu.Lock()
	if l.leases[ls.id] == ls {
		delete(l.leases, ls.id)
		if g := l.grains[pidKey(ls.grain)]; g != nil {
			g.leases--
			l.tidyRefs(g)
		}
	}
	l.mu.Unlock()
	ls.end()
}

func (l *LockClient) releaseQuietly(ls *lease) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if grain, id, err := ls.where(ctx); err == nil {
		_, _ = actors.Request[*lockv1.ReleaseResponse](ctx, l.n.system.Root, grain, &lockv1.ReleaseRequest{Name: ls.name, LeaseId: id})
	}
	ls.end()
}

// Close releases every lease still held through this facade (bounded),
// closes their Done channels and stops the facade's actor, which tells the
// grains it is gone. Later calls return ErrClosed. Idempotent.
func (l *LockClient) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	held := l.leases
	l.leases = map[string]*lease{}
	l.mu.Unlock()
	l.endLife()
	for _, ls := range held {
		l.releaseQuietly(ls)
	}
	if !l.n.system.IsStopped() {
		_ = l.n.system.Root.StopFuture(l.self).Wait()
	}
	l.cleanups.Wait()
	return nil
}

// Abandon stops the facade without releasing anything, as if its process
// had died: the grains see it gone, release its leases and withdraw its
// waits. Its leases' Done channels close; later calls return ErrClosed.
// It exists for fault tests (conformance's crash of a holder).
func (l *LockClient) Abandon() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	held := l.leases
	l.leases = map[string]*lease{}
	l.mu.Unlock()
	l.endLife()
	if !l.n.system.IsStopped() {
		_ = l.n.system.Root.StopFuture(l.self).Wait()
	}
	l.cleanups.Wait()
	for _, ls := range held {
		ls.end()
	}
}

// lease is a lease held in a grain. grain and id change when the lease
// moves to the grain's next activation (see move); both are guarded by
// Locks.mu, and so is moving.
type lease struct {
	l      *LockClient
	grain  *actor.PID
	name   string
	owner  string
	token  uint64
	id     string
	handle string // the backend's record (backends.LeaseRecord.Handle)
	moving chan struct{}
	// calls cancels the requests in flight to the lease's grain when the
	// lease starts to move: a grain that is paused would never answer.
	calls map[*context.CancelFunc]struct{}

	ttlMu  sync.Mutex // guards ttl and expiry
	ttl    time.Duration
	expiry *time.Timer // the local deadline

	done    chan struct{}
	endOnce sync.Once
}

// where returns the lease's grain and id, waiting for a move in progress.
func (ls *lease) where(ctx context.Context) (*actor.PID, string, error) {
	l := ls.l
	l.mu.Lock()
	mv := ls.moving
	l.mu.Unlock()
	if mv != nil {
		select {
		case <-mv:
		case <-ls.done:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return ls.grain, ls.id, nil
}

// message is the lease as the grains know it, for an AdoptRequest.
func (ls *lease) message(id string) *lockv1.Lease {
	return &lockv1.Lease{
		Name: ls.name, Owner: ls.owner, Ttl: durationpb.New(ls.TTL()),
		Token: ls.token, LeaseId: id, Handle: ls.handle,
	}
}

func (ls *lease) Name() string  { return ls.name }
func (ls *lease) Owner() string { return ls.owner }
func (ls *lease) Token() uint64 { return ls.token }
func (ls *lease) TTL() time.Duration {
	ls.ttlMu.Lock()
	defer ls.ttlMu.Unlock()
	return ls.ttl
}
func (ls *lease) Done() <-chan struct{} { return ls.done }
func (ls *lease) ended() bool {
	select {
	case <-ls.done:
		return true
	default:
		return false
	}
}

func (ls *lease) end() {
	ls.endOnce.Do(func() {
		ls.ttlMu.Lock()
		if ls.expiry != nil {
			ls.expiry.Stop()
		}
		ls.ttlMu.Unlock()
		close(ls.done)
	})
}

// gone maps the failure of a request to the lease's grain: a grain that is
// no longer there (dead letter) cannot hold the lease any more.
func (ls *lease) gone(resp any, err error) error {
	if err != nil && noReply(resp) && errors.Is(err, backends.ErrUnavailable) {
		return fmt.Errorf("lock %q: %w (%s)", ls.name, errGrainGone, err.Error())
	}
	return err
}

// noReply reports whether a request's response is absent: nil, or a nil
// pointer inside the interface (what actors.Request returns without a
// reply).
func noReply(resp any) bool {
	if resp == nil {
		return true
	}
	v := reflect.ValueOf(resp)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// call sends a request about the lease to its grain. When the grain is
// gone (a dead letter) the lease moves to the grain's next activation and
// the request is sent there once more.
func (ls *lease) call(ctx context.Context, send func(ctx context.Context, grain *actor.PID, id string) (any, error)) error {
	l := ls.l
	for attempt := 0; ; attempt++ {
		grain, id, err := ls.where(ctx)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		l.mu.Lock()
		if ls.calls == nil {
			ls.calls = map[*context.CancelFunc]struct{}{}
		}
		ls.calls[&cancel] = struct{}{}
		l.mu.Unlock()
		resp, err := send(rctx, grain, id)
		l.mu.Lock()
		delete(ls.calls, &cancel)
		l.mu.Unlock()
		moved := rctx.Err() != nil && ctx.Err() == nil
		cancel()
		if moved && attempt < 8 {
			// The lease started to move while the request waited: send
			// it again where the lease went (the old grain, should it
			// ever answer, finds the lease no longer its own).
			continue
		}
		err = ls.gone(resp, err)
		// A grain that is gone (a dead letter) or does not know the lease
		// (it was reset or restarted): the backend may hold the lease
		// still. Take it to the grain's current activation (if the
		// backend no longer holds it, the move ends the lease) and ask
		// once more.
		unknown := errors.Is(err, backends.ErrNotHeld) && !ls.ended()
		if attempt == 0 && ls.handle != "" && (errors.Is(err, errGrainGone) || unknown) {
			l.mu.Lock()
			if pidKey(ls.grain) == pidKey(grain) {
				l.move(ls, grain)
			}
			l.mu.Unlock()
			continue
		}
		if errors.Is(err, errGrainGone) {
			err = fmt.Errorf("%w: %w", err, backends.ErrNotHeld)
		}
		return err
	}
}

// errGrainGone: a request about a lease reached no grain.
var errGrainGone = errors.New("the lock's grain is gone")

// Refresh implements backends.Lease.
func (ls *lease) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := ls.l.usable(); err != nil {
		return fmt.Errorf("cluster: lock %q refresh: %w", ls.name, err)
	}
	if ls.ended() {
		return fmt.Errorf("cluster: lock %q refresh: lease over: %w", ls.name, backends.ErrNotHeld)
	}
	sent := time.Now()
	var granted time.Duration // the TTL after the refresh, as the grain reports it
	err := ls.call(ctx, func(ctx context.Context, grain *actor.PID, id string) (any, error) {
		req := &lockv1.RefreshRequest{Name: ls.name, LeaseId: id}
		if ttl != 0 {
			req.Ttl = durationpb.New(ttl)
		}
		resp, err := actors.Request[*lockv1.RefreshResponse](ctx, ls.l.n.system.Root, grain, req)
		if err == nil && resp.GetTtl() != nil {
			granted = resp.GetTtl().AsDuration()
		}
		return resp, err
	})
	if err == nil {
		ls.ttlMu.Lock()
		switch {
		case granted > 0:
			ls.ttl = granted
		case ttl != 0:
			ls.ttl = ttl
		}
		ttl = ls.ttl
		ls.ttlMu.Unlock()
		// The backend restarted the TTL after sent.
		ls.expireAt(sent.Add(ttl))
		if ls.ended() {
			// The local deadline passed while the refresh was on its way:
			// the holder was told the lease is over, so give it up.
			ls.l.cleanups.Go(func() { ls.l.releaseQuietly(ls) })
			err = fmt.Errorf("lease over before the refresh returned: %w", backends.ErrNotHeld)
		}
	}
	if errors.Is(err, backends.ErrNotHeld) {
		ls.l.forget(ls)
	}
	if err != nil {
		return fmt.Errorf("cluster: lock %q refresh: %w", ls.name, err)
	}
	return nil
}

// Release implements backends.Lease; Done is closed afterwards, also when
// the lease was no longer held (ErrNotHeld).
func (ls *lease) Release(ctx context.Context) error {
	if err := ls.l.usable(); err != nil {
		return fmt.Errorf("cluster: lock %q release: %w", ls.name, err)
	}
	err := ls.call(ctx, func(ctx context.Context, grain *actor.PID, id string) (any, error) {
		return actors.Request[*lockv1.ReleaseResponse](ctx, ls.l.n.system.Root, grain, &lockv1.ReleaseRequest{Name: ls.name, LeaseId: id})
	})
	if err == nil || errors.Is(err, backends.ErrNotHeld) {
		ls.l.forget(ls)
	}
	if err != nil {
		return fmt.Errorf("cluster: lock %q release: %w", ls.name, err)
	}
	return nil
}
