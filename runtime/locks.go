package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"google.golang.org/protobuf/proto"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// LockClient is a backends.Locker served by the node's lock actor: plain Go
// code gets the actor's locks, with the
// actor's local FIFO queue and hand-off, through the same interface as a
// direct Redis or etcd Locker.
//
// Leases stay in the actor; a LockClient refers to them by id. Lease loss
// reaches the client as a LeaseLost message, delivered to one small inbox
// process per client, which closes the lease's Done channel. Close releases
// every lease the client still holds and removes the inbox.
//
// A Release that returns an error other than ErrNotHeld (the backend was
// unreachable, or ctx ended) may be called again; if it is not, the actor
// goes on releasing the lease in the background until the backend answers,
// and Done closes then. A lease is never left renewed for good by a failed
// Release.
type LockClient struct {
	base clientBase[*clientLease]
	opts nodeaccess.ClientOptions
}

var (
	_ backends.Locker = (*LockClient)(nil)
	_ backends.Lease  = (*clientLease)(nil)
)

// newLockClient returns a client of the lock actor at pid. root sends the
// requests (usually system.Root).
func newLockClient(root *actor.RootContext, pid *actor.PID, opts nodeaccess.ClientOptions) *LockClient {
	c := &LockClient{opts: withClientDefaults(opts)}
	c.base.init(root, pid, "lock-client", c.opts.CleanupTimeout, c.opts.Logger, c.onEvent,
		func(ctx context.Context, requestID string) error {
			_, err := actors.Request[*lockv1.CancelResponse](ctx, root, pid, &lockv1.CancelRequest{RequestId: requestID})
			return err
		})
	return c
}

// Acquire waits until the lock is granted or ctx ends. The wait happens in
// the actor (which queues local waiters in arrival order). When ctx ends
// first, Acquire returns at once with an error that wraps both ctx.Err()
// and backends.ErrNotObtained, and the client withdraws the request in the
// background with a CancelRequest (bounded by CleanupTimeout; Close waits
// for it): the actor drops the waiter, or gives back what it granted
// meanwhile, so nothing of it is left held.
func (c *LockClient) Acquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return c.acquire(ctx, "runtime: lock acquire", name, opts, true)
}

// TryAcquire returns ErrNotObtained at once when the lock is held (or
// local waiters are queued for it).
func (c *LockClient) TryAcquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return c.acquire(ctx, "runtime: lock try acquire", name, opts, false)
}

func (c *LockClient) acquire(ctx context.Context, op, name string, opts backends.LockOptions, wait bool) (backends.Lease, error) {
	if err := c.base.usable(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, name, err)
	}
	req := &lockv1.AcquireRequest{
		Name: name, Owner: opts.Owner, AutoRenew: opts.AutoRenew, Wait: wait,
		RequestId: newRequestID(), Subscriber: actors.SubscriberOf(c.base.inbox.pid),
	}
	if opts.TTL != 0 {
		req.Ttl = durationpb.New(opts.TTL)
	}
	resp, err := grantRequest[*lockv1.AcquireResponse](ctx, c.base.root, c.base.pid, req, wait, func(t *durationpb.Duration) { req.Timeout = t })
	if err != nil {
		var gaveUp error
		if wait {
			gaveUp = backends.ErrNotObtained
		}
		return nil, c.base.withdraw(ctx, op, name, req.RequestId, resp == nil, err, gaveUp)
	}
	m := resp.GetLease()
	l := &clientLease{
		c: c, name: m.GetName(), owner: m.GetOwner(),
		token: m.GetToken(), id: m.GetLeaseId(), grantDone: grantDone{done: make(chan struct{})},
	}
	l.ttl.Store(int64(m.GetTtl().AsDuration()))
	if !c.base.keep(l) {
		c.release(l.id, name)
		return nil, fmt.Errorf("%s %q: client: %w", op, name, backends.ErrClosed)
	}
	return l, nil
}

// farFuture stands for "no deadline": actors.Request gives up after
// actors.DefaultRequestTimeout when ctx has no deadline, but a waiting
// acquire or campaign must wait as long as its ctx lasts.
const farFuture = 100 * 365 * 24 * time.Hour

// grantRequest sends a request that may wait (an acquire or a campaign)
// and waits for its answer. For a waiting request, ctx's deadline is passed
// to the actor through setTimeout, so the actor gives up at the same time.
func grantRequest[Resp proto.Message](ctx context.Context, root *actor.RootContext, pid *actor.PID, req proto.Message, wait bool,
	setTimeout func(*durationpb.Duration)) (Resp, error) {
	if wait {
		if dl, ok := ctx.Deadline(); ok {
			setTimeout(durationpb.New(max(time.Until(dl), time.Nanosecond)))
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, farFuture)
			defer cancel()
		}
	}
	return actors.Request[Resp](ctx, root, pid, req)
}

// release gives back a lease the caller will never see.
func (c *LockClient) release(id, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CleanupTimeout)
	defer cancel()
	_, _ = actors.Request[*lockv1.ReleaseResponse](ctx, c.base.root, c.base.pid, &lockv1.ReleaseRequest{Name: name, LeaseId: id})
}

// onEvent runs on the sending actor's goroutine: it must not block.
func (c *LockClient) onEvent(msg any) {
	if m, ok := msg.(*lockv1.LeaseLost); ok {
		c.base.lose(m.GetLeaseId())
	}
}

// Close releases every lease still held through this client (bounded by
// CleanupTimeout each), closes their Done channels and removes the inbox.
// Later calls return ErrClosed. Close is idempotent.
func (c *LockClient) Close() error {
	held, ok := c.base.shut()
	if !ok {
		return nil
	}
	for _, l := range held {
		c.release(l.id, l.name)
		l.end()
	}
	c.base.closeInbox()
	return nil
}

// clientLease is a lease held in the lock actor.
type clientLease struct {
	c     *LockClient
	name  string
	owner string
	ttl   atomic.Int64 // time.Duration: granted, then as the last Refresh set it
	token uint64
	id    string
	grantDone
}

func (l *clientLease) Name() string    { return l.name }
func (l *clientLease) Owner() string   { return l.owner }
func (l *clientLease) Token() uint64   { return l.token }
func (l *clientLease) grantID() string { return l.id }

// TTL is the lease's current TTL after the backend's rounding: the one
// granted at acquisition, or the one the last successful Refresh set.
func (l *clientLease) TTL() time.Duration { return time.Duration(l.ttl.Load()) }

// Refresh extends the lease to ttl from now (0 = the lease's current TTL);
// TTL reports the new TTL afterwards.
func (l *clientLease) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := l.c.base.usable(); err != nil {
		return fmt.Errorf("runtime: lock %q refresh: %w", l.name, err)
	}
	req := &lockv1.RefreshRequest{Name: l.name, LeaseId: l.id}
	if ttl != 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := actors.Request[*lockv1.RefreshResponse](ctx, l.c.base.root, l.c.base.pid, req)
	if errors.Is(err, backends.ErrNotHeld) {
		l.c.base.forget(l)
	}
	if err != nil {
		return fmt.Errorf("runtime: lock %q refresh: %w", l.name, err)
	}
	switch {
	case resp.GetTtl() != nil:
		l.ttl.Store(int64(resp.GetTtl().AsDuration()))
	case ttl != 0:
		l.ttl.Store(int64(ttl)) // an actor that does not report it: as asked
	}
	return nil
}

// Release frees the lock; Done is closed afterwards, also when it was no
// longer held (ErrNotHeld).
func (l *clientLease) Release(ctx context.Context) error {
	return giveUp[*lockv1.ReleaseResponse](ctx, &l.c.base, l,
		&lockv1.ReleaseRequest{Name: l.name, LeaseId: l.id}, fmt.Sprintf("runtime: lock %q release", l.name))
}

// newRequestID is a random id for a request or a subscription.
func newRequestID() string { return rand.Text() }

// lostSet remembers grants whose loss was reported before the answer that
// granted them was read (the answer and the loss travel to different
// processes). It is bounded: an entry is only left over when the grant was
// never read at all, and those are withdrawn by CancelRequest anyway.
type lostSet struct {
	ids   map[string]bool
	order []string
}

const lostSetMax = 256

func (s *lostSet) add(id string) {
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	if s.ids[id] {
		return
	}
	if len(s.order) >= lostSetMax {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	s.ids[id] = true
	s.order = append(s.order, id)
}

func (s *lostSet) take(id string) bool {
	if !s.ids[id] {
		return false
	}
	delete(s.ids, id)
	for i, x := range s.order {
		if x == id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return true
}

// inbox is a process registered in the actor system (no mailbox, no
// goroutine) that receives a client's events and hands each to handle on
// the sender's goroutine. It honours Watch/Unwatch, so actors that
// death-watch it (subscription hubs) learn when it is closed.
type inbox struct {
	sys    *actor.ActorSystem
	pid    *actor.PID
	handle func(msg any)

	mu       sync.Mutex
	closed   bool
	watchers map[string]*actor.PID
}

func newInbox(sys *actor.ActorSystem, kind string, handle func(msg any)) (*inbox, error) {
	b := &inbox{sys: sys, handle: handle, watchers: map[string]*actor.PID{}}
	pid, ok := sys.ProcessRegistry.Add(b, kind+"$"+sys.ProcessRegistry.NextId())
	if !ok {
		return nil, fmt.Errorf("runtime: register %s inbox: %w", kind, backends.ErrClosed)
	}
	b.pid = pid
	return b, nil
}

// SendUserMessage implements actor.Process.
func (b *inbox) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if !closed {
		b.handle(msg)
	}
}

// SendSystemMessage implements actor.Process.
func (b *inbox) SendSystemMessage(_ *actor.PID, message any) {
	switch m := message.(type) {
	case *actor.Watch:
		b.mu.Lock()
		closed := b.closed
		if !closed {
			b.watchers[m.Watcher.Address+"/"+m.Watcher.Id] = m.Watcher
		}
		b.mu.Unlock()
		if closed {
			b.terminated(m.Watcher)
		}
	case *actor.Unwatch:
		b.mu.Lock()
		delete(b.watchers, m.Watcher.Address+"/"+m.Watcher.Id)
		b.mu.Unlock()
	}
}

// Stop implements actor.Process.
func (b *inbox) Stop(_ *actor.PID) { b.close() }

func (b *inbox) terminated(watcher *actor.PID) {
	p, _ := b.sys.ProcessRegistry.Get(watcher)
	p.SendSystemMessage(watcher, &actor.Terminated{Who: b.pid, Why: actor.TerminatedReason_Stopped})
}

// close unregisters the inbox and tells its watchers.
func (b *inbox) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	watchers := b.watchers
	b.watchers = nil
	b.mu.Unlock()
	b.sys.ProcessRegistry.Remove(b.pid)
	for _, w := range watchers {
		b.terminated(w)
	}
}
