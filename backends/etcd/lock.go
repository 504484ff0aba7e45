package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errLockLeaseLost is the cause when a contender's own lease ended while it
// was still waiting for its turn.
var errLockLeaseLost = errors.New("etcd: lease lost while waiting")

// errLockWatchClosed is the cause when a watch ended without the caller's
// ctx ending: the client was closed underneath it.
var errLockWatchClosed = errors.New("etcd: watch closed")

// lockStore is the Locker NewLocker returns.
type lockStore struct {
	conn *Connector
	ns   backends.Namespace
	holdSet
}

var _ backends.Locker = (*lockStore)(nil)

// NewLocker returns a Locker for opts.Namespace on conn (the package doc has
// the layout). It also implements backends.Adopter; its leases implement
// backends.Handoffer and backends.Detacher. Close releases every lease it
// still holds and aborts waiting Acquires.
func NewLocker(conn *Connector, opts backends.LockerOptions) (backends.Locker, error) {
	s, err := newLockStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newLockStore is NewLocker with the concrete type, for this package's tests.
func newLockStore(conn *Connector, opts backends.LockerOptions) (*lockStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "<nil>", "must not be nil")
	}
	ns := opts.Namespace.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	l := &lockStore{conn: conn, ns: ns}
	l.holdSet.init("locker")
	return l, nil
}

// Acquire blocks until the lock is held or ctx ends. Waiters are served in
// the order they arrived (FIFO by create revision) and wake on their
// predecessor's delete, without polling. When ctx ends the contender's key
// and lease are removed before an error wrapping ctx.Err() and
// ErrNotObtained is returned.
func (l *lockStore) Acquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return l.acquire(ctx, "etcd: lock acquire", name, opts, true)
}

// TryAcquire takes the lock only if it is free; ErrNotObtained otherwise
// (its own key and lease are removed again).
func (l *lockStore) TryAcquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	return l.acquire(ctx, "etcd: lock try acquire", name, opts, false)
}

func (l *lockStore) acquire(ctx context.Context, op, name string, opts backends.LockOptions, wait bool) (backends.Lease, error) {
	if err := backends.ValidateName("lock name", name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	opts, err := opts.Validate()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if opts.Owner == "" {
		opts.Owner = lockRandomOwner()
	}
	if l.isClosed() {
		return nil, fmt.Errorf("%s: locker: %w", op, backends.ErrClosed)
	}
	cli, err := l.conn.client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// Close aborts a waiting Acquire as if its ctx had ended.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	stop := context.AfterFunc(l.ctx, wcancel)
	defer stop()

	// failed maps the error of a step; a blocking Acquire whose ctx ended
	// did not get the lock, and says so as well as why.
	failed := func(err error) error {
		if wait && ctx.Err() != nil {
			return fmt.Errorf("%s %q: %w: %w", op, name, backends.ErrNotObtained, ctx.Err())
		}
		return l.waitErr(ctx, op, err)
	}
	pfx := l.ns.Prefix(backends.ComponentLock, name)
	e, err := lockEnqueue(wctx, l.conn, cli, pfx, opts.Owner, leaseSeconds(opts.TTL))
	if err != nil {
		return nil, failed(err)
	}
	if !e.first {
		if !wait {
			lockRevoke(ctx, l.conn, cli, e.id)
			return nil, fmt.Errorf("%s %q: %w", op, name, backends.ErrNotObtained)
		}
		if err := lockWaitTurn(wctx, l.conn, cli, pfx, &e); err != nil {
			lockRevoke(ctx, l.conn, cli, e.id)
			return nil, failed(err)
		}
	}
	h, err := l.hold(wctx, cli, e, opts.AutoRenew)
	if err != nil {
		lockRevoke(ctx, l.conn, cli, e.id)
		return nil, failed(err)
	}
	return &lockLease{l: l, h: h, name: name, owner: opts.Owner}, nil
}

// hold turns a queue entry that reached the front into a held lock: it
// renews the lease once so the TTL counts from now, then starts the monitor.
func (l *lockStore) hold(ctx context.Context, cli *clientv3.Client, e lockEntry, autoRenew bool) (*lockHold, error) {
	if e.waited {
		start := time.Now()
		octx, cancel := l.conn.opContext(ctx)
		resp, err := cli.KeepAliveOnce(octx, e.id)
		cancel()
		if err != nil {
			if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
				err = errLockLeaseLost
			}
			return nil, err
		}
		e.granted, e.ttl = start, time.Duration(resp.TTL)*time.Second
	}
	h := l.holdSet.hold(l.conn, cli, e, autoRenew)
	if h == nil {
		return nil, fmt.Errorf("locker: %w", backends.ErrClosed)
	}
	return h, nil
}

// Close releases every lock still held (best effort, bounded by the
// connector's RequestTimeout each), aborts waiting Acquires and stops all
// background goroutines. Later calls return ErrClosed.
func (l *lockStore) Close() error {
	return l.shut(l.conn, "etcd: lock close")
}

// lockReleaseAll releases holds concurrently within one RequestTimeout. A
// hold that could not be released (etcd unreachable) is ended as lost: its
// keep-alive stops with the component, so it expires by TTL.
func lockReleaseAll(conn *Connector, holds []*lockHold, op string) {
	ctx, cancel := conn.opContext(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range holds {
		wg.Go(func() {
			if err := h.release(ctx, op); err != nil {
				h.lose()
			}
		})
	}
	wg.Wait()
}

// lockRandomOwner is the default owner: 16 random hex digits.
func lockRandomOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lockEntry is one contender's key in a queue (lock or election).
type lockEntry struct {
	key     string
	rev     int64 // create revision of key: the fencing token / epoch
	id      clientv3.LeaseID
	ttl     time.Duration // as granted by etcd
	granted time.Time     // when the lease was last (re)started, our clock
	first   bool          // the key was the oldest under the prefix at once
	waited  bool
}

// lockEnqueue grants a lease of secs seconds and adds the contender's key
// <pfx><lease id hex> = value, reading the oldest key of the prefix in the
// same Txn so that the uncontended case costs two round trips. On error the
// lease is revoked again.
func lockEnqueue(ctx context.Context, conn *Connector, cli *clientv3.Client, pfx, value string, secs int64) (lockEntry, error) {
	start := time.Now()
	octx, cancel := conn.opContext(ctx)
	g, err := cli.Grant(octx, secs)
	cancel()
	if err != nil {
		return lockEntry{}, err
	}
	e := lockEntry{
		key:     fmt.Sprintf("%s%x", pfx, int64(g.ID)),
		id:      g.ID,
		ttl:     time.Duration(g.TTL) * time.Second,
		granted: start,
	}
	octx, cancel = conn.opContext(ctx)
	resp, err := cli.Txn(octx).
		If(clientv3.Compare(clientv3.CreateRevision(e.key), "=", 0)).
		Then(
			clientv3.OpPut(e.key, value, clientv3.WithLease(g.ID)),
			clientv3.OpGet(pfx, clientv3.WithFirstCreate()...),
		).Commit()
	cancel()
	if err != nil {
		lockRevoke(ctx, conn, cli, g.ID)
		return lockEntry{}, err
	}
	if !resp.Succeeded {
		// A fresh lease id is unique, so its key cannot exist yet.
		lockRevoke(ctx, conn, cli, g.ID)
		return lockEntry{}, fmt.Errorf("etcd: key %q already exists", e.key)
	}
	e.rev = resp.Header.Revision
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	e.first = len(kvs) == 0 || kvs[0].CreateRevision == e.rev
	return e, nil
}

// lockRevoke revokes a lease, deleting the keys attached to it, even when
// ctx has already ended (bounded by RequestTimeout). Errors are ignored: the
// lease then simply expires after its TTL.
func lockRevoke(ctx context.Context, conn *Connector, cli *clientv3.Client, id clientv3.LeaseID) {
	rctx, cancel := conn.opContext(context.WithoutCancel(ctx))
	defer cancel()
	_, _ = cli.Revoke(rctx, id)
}

// lockWaitTurn blocks until no key under pfx has a create revision below
// e.rev. It watches only the immediate predecessor, from the revision at
// which it was read, for its delete, then looks again; meanwhile it keeps
// the contender's lease alive. It returns ctx.Err() when ctx ends.
func lockWaitTurn(ctx context.Context, conn *Connector, cli *clientv3.Client, pfx string, e *lockEntry) error {
	e.waited = true
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	kach, err := cli.KeepAlive(kctx, e.id)
	if err != nil {
		return err
	}
	for {
		octx, cancel := conn.opContext(ctx)
		resp, err := cli.Get(octx, pfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(e.rev-1))...)
		cancel()
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if err := lockWaitDelete(ctx, cli, string(resp.Kvs[0].Key), resp.Header.Revision, kach); err != nil {
			return err
		}
	}
}

// lockWaitDelete returns nil once key is deleted at or after rev, or when the
// watch must be re-established (compaction); an error when the contender's
// lease ends, the watch is closed or ctx ends.
func lockWaitDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64, kach <-chan *clientv3.LeaseKeepAliveResponse) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, key, clientv3.WithRev(rev), clientv3.WithFilterPut())
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-kach:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errLockLeaseLost
			}
		case wr, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errLockWatchClosed
			}
			if wr.CompactRevision != 0 {
				return nil // history gone: look at the queue again
			}
			if err := wr.Err(); err != nil {
				return err
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					return nil
				}
			}
		}
	}
}

// lockHold states.
const (
	lockHeld = iota
	lockReleased
	lockLost
)

// lockHold is a held queue position (a lock lease or a leadership). A
// monitor goroutine watches the key for its delete and, with autoRenew,
// keeps the lease alive; Done closes when either says the hold is over.
type lockHold struct {
	conn      *Connector
	cli       *clientv3.Client
	key       string
	rev       int64
	autoRenew bool
	onEnd     func(h *lockHold, state int) // with the final state

	opMu sync.Mutex // serializes Refresh and Release round trips

	mu      sync.Mutex
	id      clientv3.LeaseID
	ttl     time.Duration
	granted time.Time
	state   int
	// passing: a hand-off transaction is in flight, so a delete of our key
	// seen by the monitor is that hand-off, not a loss.
	passing bool

	done     chan struct{}
	endOnce  sync.Once
	relet    chan struct{} // the lease changed: restart the keep-alive
	stop     context.CancelFunc
	finished chan struct{} // the monitor goroutine returned
}

func newLockHold(parent context.Context, conn *Connector, cli *clientv3.Client, e lockEntry, autoRenew bool,
	wg *sync.WaitGroup, onEnd func(*lockHold, int)) *lockHold {
	ctx, cancel := context.WithCancel(parent)
	h := &lockHold{
		conn: conn, cli: cli, key: e.key, rev: e.rev, autoRenew: autoRenew, onEnd: onEnd,
		id: e.id, ttl: e.ttl, granted: e.granted,
		done: make(chan struct{}), relet: make(chan struct{}, 1),
		stop: cancel, finished: make(chan struct{}),
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(h.finished)
		h.monitor(ctx)
	}()
	return h
}

func (h *lockHold) lease() clientv3.LeaseID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id
}

func (h *lockHold) isHeld() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == lockHeld
}

// end records the final state once and closes Done.
func (h *lockHold) end(state int) {
	h.endOnce.Do(func() {
		h.mu.Lock()
		if state == lockLost && h.passing {
			state = lockReleased
		}
		h.state = state
		h.mu.Unlock()
		close(h.done)
		if state == lockLost {
			h.conn.logger.Debug("etcd: lock or leadership lost", "key", h.key, "token", h.rev)
		}
		if h.onEnd != nil {
			h.onEnd(h, state)
		}
	})
}

// monitor ends the hold when the key is deleted (released elsewhere, lease
// expired, removed by hand), when auto-renewal finds the lease gone, or when
// the client is closed (the connector was disconnected: nothing can renew or
// release through it any more, so the hold is treated as lost at once).
func (h *lockHold) monitor(ctx context.Context) {
	var (
		kach    <-chan *clientv3.LeaseKeepAliveResponse
		kaID    clientv3.LeaseID
		kcancel = context.CancelFunc(func() {})
	)
	defer func() { kcancel() }()
	startKeepAlive := func() bool {
		kcancel()
		if !h.autoRenew {
			return true
		}
		kctx, cancel := context.WithCancel(ctx)
		kaID = h.lease()
		ch := h.renew(kctx, kaID)
		kcancel = func() {
			cancel()
			for range ch { // until the renewing goroutine has returned
			}
		}
		kach = ch
		return true
	}
	if !startKeepAlive() {
		h.end(lockLost)
		return
	}
	from := h.rev + 1
	for {
		// clientv3's Watch blocks until its stream is up, so against an
		// unreachable server it would keep the monitor from noticing that
		// the keep-alive ended: start it beside the loop instead.
		wctx, wcancel := context.WithCancel(ctx)
		started, watching := make(chan clientv3.WatchChan, 1), make(chan struct{})
		go func() {
			defer close(watching)
			started <- h.cli.Watch(wctx, h.key, clientv3.WithRev(from), clientv3.WithFilterPut())
		}()
		lost, recheck := h.watchLoop(ctx, started, &kach, &kaID, startKeepAlive)
		wcancel()
		<-watching // Watch returns once wctx is cancelled
		if ctx.Err() != nil {
			return
		}
		if lost {
			h.end(lockLost)
			return
		}
		if recheck {
			// The watch could not start at the wanted revision
			// (compacted): see whether the key is still ours.
			octx, cancel := h.conn.opContext(ctx)
			resp, err := h.cli.Get(octx, h.key)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.rev {
				h.end(lockLost)
				return
			}
			from = resp.Header.Revision + 1
		}
	}
}

// renew keeps lease id alive, one KeepAliveOnce every TTL/3, and sends
// each answer on the channel it returns. It closes the channel when ctx
// ends, when etcd no longer knows the lease, and when no renewal has
// succeeded by the hold's local deadline: the start of the last request
// that restarted the TTL (a renewal or a Refresh) plus the TTL. etcd
// restarts a TTL when the request arrives, never before it was sent, so
// the hold ends here before etcd can let the lock go to someone else.
// clientv3's KeepAlive stream cannot promise that: it counts from when an
// answer arrived, looks only every 500ms, and waits DialTimeout+1s for the
// first answer, longer than a 2s lease.
func (h *lockHold) renew(ctx context.Context, id clientv3.LeaseID) <-chan *clientv3.LeaseKeepAliveResponse {
	ch := make(chan *clientv3.LeaseKeepAliveResponse, 1)
	go func() {
		defer close(ch)
		for {
			h.mu.Lock()
			deadline, every := h.granted.Add(h.ttl), max(h.ttl/3, 10*time.Millisecond)
			h.mu.Unlock()
			left := time.Until(deadline)
			if left <= 0 {
				return // nothing renewed it in time: lost
			}
			timer := time.NewTimer(min(every, left))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			h.mu.Lock()
			deadline = h.granted.Add(h.ttl) // a Refresh may have moved it
			h.mu.Unlock()
			start := time.Now()
			if !start.Before(deadline) {
				continue
			}
			rctx, cancel := context.WithDeadline(ctx, deadline)
			resp, err := h.cli.KeepAliveOnce(rctx, id)
			cancel()
			if err != nil {
				if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
					return
				}
				continue // unreachable for now: try again until the deadline
			}
			h.mu.Lock()
			if h.id == id && start.After(h.granted) {
				h.granted, h.ttl = start, time.Duration(resp.TTL)*time.Second
			}
			h.mu.Unlock()
			select {
			case ch <- resp:
			default: // the monitor only needs to know it is alive
			}
		}
	}()
	return ch
}

func (h *lockHold) watchLoop(ctx context.Context, started <-chan clientv3.WatchChan, kach *<-chan *clientv3.LeaseKeepAliveResponse,
	kaID *clientv3.LeaseID, restart func() bool) (lost, recheck bool) {
	var wch clientv3.WatchChan // nil, so not selected, until the watch started
	for {
		select {
		case <-ctx.Done():
			return false, false
		case wch = <-started:
			started = nil
		case <-h.relet:
			if !restart() {
				return true, false
			}
		case _, ok := <-*kach:
			if ok {
				continue
			}
			if ctx.Err() != nil {
				return false, false
			}
			if h.lease() != *kaID {
				// Refresh moved the key to a new lease and revoked
				// the old one: follow it.
				if !restart() {
					return true, false
				}
				continue
			}
			return true, false
		case wr, ok := <-wch:
			if !ok {
				return ctx.Err() == nil, false
			}
			if wr.CompactRevision != 0 {
				return false, true
			}
			if wr.Err() != nil {
				return false, true
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					return true, false
				}
			}
		}
	}
}

// stopMonitor ends the monitor goroutine and waits for it.
func (h *lockHold) stopMonitor() {
	h.stop()
	<-h.finished
}

// release deletes the key if it is still ours and revokes the lease.
func (h *lockHold) release(ctx context.Context, op string) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if !h.isHeld() {
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	octx, cancel := h.conn.opContext(ctx)
	resp, err := h.cli.Txn(octx).
		If(clientv3.Compare(clientv3.CreateRevision(h.key), "=", h.rev)).
		Then(clientv3.OpDelete(h.key)).Commit()
	cancel()
	if err != nil {
		if h.cli.Ctx().Err() != nil {
			// Nothing can reach etcd through this client again: the lease
			// expires on its own.
			h.stopMonitor()
			h.end(lockLost)
		}
		return mapCtxErr(ctx, op, err)
	}
	h.stopMonitor()
	lockRevoke(ctx, h.conn, h.cli, h.lease())
	if !resp.Succeeded {
		h.end(lockLost)
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	h.end(lockReleased)
	return nil
}

// refresh restarts the lease's TTL. ttl 0 keeps the current TTL; a TTL that
// rounds to a different number of seconds moves the key to a new lease.
func (h *lockHold) refresh(ctx context.Context, op string, ttl time.Duration) error {
	if err := backends.ValidateLockTTL("ttl", ttl); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if !h.isHeld() {
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	h.mu.Lock()
	id, cur := h.id, h.ttl
	h.mu.Unlock()
	secs := int64(cur / time.Second)
	if ttl > 0 {
		secs = leaseSeconds(ttl)
	}
	if secs == int64(cur/time.Second) {
		return h.keepAliveOnce(ctx, op, id)
	}
	return h.moveLease(ctx, op, id, secs)
}

func (h *lockHold) keepAliveOnce(ctx context.Context, op string, id clientv3.LeaseID) error {
	start := time.Now()
	octx, cancel := h.conn.opContext(ctx)
	defer cancel()
	ka, err := h.cli.KeepAliveOnce(octx, id)
	if err != nil {
		if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
			h.lose()
			return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
		}
		return mapCtxErr(ctx, op, err)
	}
	// The lease lives, but is the key still ours?
	resp, err := h.cli.Get(octx, h.key, clientv3.WithKeysOnly())
	if err != nil {
		return mapCtxErr(ctx, op, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.rev {
		h.lose()
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	h.mu.Lock()
	h.granted, h.ttl = start, time.Duration(ka.TTL)*time.Second
	h.mu.Unlock()
	return nil
}

// moveLease gives the key a new lease of secs seconds: etcd cannot change
// the TTL of a lease, but a Put can re-attach a key to another lease without
// touching its value or create revision (so the token stays).
func (h *lockHold) moveLease(ctx context.Context, op string, old clientv3.LeaseID, secs int64) error {
	start := time.Now()
	octx, cancel := h.conn.opContext(ctx)
	g, err := h.cli.Grant(octx, secs)
	cancel()
	if err != nil {
		return mapCtxErr(ctx, op, err)
	}
	octx, cancel = h.conn.opContext(ctx)
	resp, err := h.cli.Txn(octx).
		If(clientv3.Compare(clientv3.CreateRevision(h.key), "=", h.rev)).
		Then(clientv3.OpPut(h.key, "", clientv3.WithIgnoreValue(), clientv3.WithLease(g.ID))).
		Commit()
	cancel()
	if err != nil {
		lockRevoke(ctx, h.conn, h.cli, g.ID)
		return mapCtxErr(ctx, op, err)
	}
	if !resp.Succeeded {
		lockRevoke(ctx, h.conn, h.cli, g.ID)
		h.lose()
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	h.mu.Lock()
	h.id, h.ttl, h.granted = g.ID, time.Duration(g.TTL)*time.Second, start
	h.mu.Unlock()
	select {
	case h.relet <- struct{}{}:
	default:
	}
	lockRevoke(ctx, h.conn, h.cli, old)
	return nil
}

// lose ends the hold as lost and stops its monitor.
func (h *lockHold) lose() {
	h.stop()
	h.end(lockLost)
}

func (h *lockHold) grantedTTL() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ttl
}

// lockLease is a held lock: backends.Lease.
type lockLease struct {
	l     *lockStore
	h     *lockHold
	name  string
	owner string
}

var (
	_ backends.Lease     = (*lockLease)(nil)
	_ backends.Handoffer = (*lockLease)(nil)
)

func (l *lockLease) Name() string  { return l.name }
func (l *lockLease) Owner() string { return l.owner }

// TTL is the lease time etcd granted (whole seconds, at least 2s).
func (l *lockLease) TTL() time.Duration { return l.h.grantedTTL() }

// Token is the create revision of the lock key.
func (l *lockLease) Token() uint64 { return uint64(l.h.rev) }

// Refresh restarts the TTL from now (ttl 0 = the current TTL). A ttl that
// rounds to another number of seconds moves the key to a new lease in one
// transaction guarded by the key's create revision; the token is unchanged.
// ErrNotHeld when the key or lease is gone.
func (l *lockLease) Refresh(ctx context.Context, ttl time.Duration) error {
	return l.h.refresh(ctx, "etcd: lock refresh", ttl)
}

// Release deletes the lock key if it is still ours and revokes the lease;
// ErrNotHeld otherwise. Done is closed afterwards either way.
func (l *lockLease) Release(ctx context.Context) error {
	return l.h.release(ctx, "etcd: lock release")
}

// Done closes when the lock is released or lost.
func (l *lockLease) Done() <-chan struct{} { return l.h.done }

// Handoff passes the lock to a new owner in one transaction: guarded by this
// lease's key still being ours and by no other contender queueing under the
// lock (every key's create revision at most ours), it deletes our key and
// creates the new owner's key on the same etcd lease. The new key's create
// revision is the new, higher token. The lease's TTL is restarted first
// with a keep-alive, which etcd serves without a write. A new owner whose
// TTL rounds to another number of seconds gets a fresh etcd lease first
// (one more write) and the old one is revoked afterwards. See
// backends.Handoffer.
func (l *lockLease) Handoff(ctx context.Context, opts backends.LockOptions) (backends.Lease, error) {
	const op = "etcd: lock handoff"
	opts, err := opts.Validate()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if opts.Owner == "" {
		opts.Owner = lockRandomOwner()
	}
	if l.l.isClosed() {
		return nil, fmt.Errorf("%s: locker: %w", op, backends.ErrClosed)
	}
	h, err := l.l.handoff(ctx, op, l, opts)
	if err != nil {
		return nil, err
	}
	return &lockLease{l: l.l, h: h, name: l.name, owner: opts.Owner}, nil
}

func (l *lockStore) handoff(ctx context.Context, op string, ls *lockLease, opts backends.LockOptions) (*lockHold, error) {
	h := ls.h
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if !h.isHeld() {
		return nil, fmt.Errorf("%s %q: %w", op, ls.name, backends.ErrNotHeld)
	}
	h.mu.Lock()
	id, cur := h.id, h.ttl
	h.mu.Unlock()

	start := time.Now()
	e, fresh, err := h.nextLease(ctx, op, id, cur, leaseSeconds(opts.TTL))
	if err != nil {
		return nil, err
	}
	pfx := l.ns.Prefix(backends.ComponentLock, ls.name)
	// Unique: the lease id alone is not (the same etcd lease may carry a
	// chain of hand-offs), but with the create revision of the key it
	// replaces it is.
	e.key = fmt.Sprintf("%s%x.%x", pfx, int64(e.id), h.rev)
	e.granted = start
	h.setPassing(true)
	defer h.setPassing(false)
	octx, cancel := h.conn.opContext(ctx)
	resp, err := h.cli.Txn(octx).
		If(
			clientv3.Compare(clientv3.CreateRevision(h.key), "=", h.rev),
			clientv3.Compare(clientv3.CreateRevision(pfx), "<", h.rev+1).WithPrefix(),
		).
		Then(clientv3.OpDelete(h.key), clientv3.OpPut(e.key, opts.Owner, clientv3.WithLease(e.id))).
		Else(clientv3.OpGet(h.key, clientv3.WithKeysOnly())).
		Commit()
	cancel()
	if err != nil {
		// The transaction may have been applied: take the new key away
		// again, so the lock is not left to an owner nobody knows.
		if fresh {
			lockRevoke(ctx, h.conn, h.cli, e.id)
		} else {
			dctx, dcancel := h.conn.opContext(context.WithoutCancel(ctx))
			_, _ = h.cli.Delete(dctx, e.key)
			dcancel()
		}
		if h.cli.Ctx().Err() != nil {
			h.lose()
		}
		return nil, mapCtxErr(ctx, op, err)
	}
	if !resp.Succeeded {
		if fresh {
			lockRevoke(ctx, h.conn, h.cli, e.id)
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != h.rev {
			h.lose()
			return nil, fmt.Errorf("%s %q: %w", op, ls.name, backends.ErrNotHeld)
		}
		return nil, fmt.Errorf("%s %q: another contender queues in etcd: %w", op, ls.name, backends.ErrNotObtained)
	}
	e.rev = resp.Header.Revision
	h.stopMonitor()
	h.end(lockReleased)
	if fresh {
		lockRevoke(ctx, h.conn, h.cli, id)
	}
	nh := l.holdSet.hold(l.conn, h.cli, e, opts.AutoRenew)
	if nh == nil {
		lockRevoke(ctx, h.conn, h.cli, e.id)
		return nil, fmt.Errorf("%s: locker: %w", op, backends.ErrClosed)
	}
	return nh, nil
}

func (h *lockHold) setPassing(v bool) {
	h.mu.Lock()
	h.passing = v
	h.mu.Unlock()
}

// nextLease returns the etcd lease the next owner of this hold's lock will
// use, in an entry without key and revision: the current lease, renewed
// now, when secs matches its TTL; otherwise a fresh lease of secs seconds
// (fresh is then true and the caller revokes whichever lease is left over).
func (h *lockHold) nextLease(ctx context.Context, op string, id clientv3.LeaseID, cur time.Duration, secs int64) (lockEntry, bool, error) {
	octx, cancel := h.conn.opContext(ctx)
	defer cancel()
	if secs != int64(cur/time.Second) {
		g, err := h.cli.Grant(octx, secs)
		if err != nil {
			return lockEntry{}, false, mapCtxErr(ctx, op, err)
		}
		return lockEntry{id: g.ID, ttl: time.Duration(g.TTL) * time.Second}, true, nil
	}
	ka, err := h.cli.KeepAliveOnce(octx, id)
	if err != nil {
		if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
			h.lose()
			return lockEntry{}, false, fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
		}
		return lockEntry{}, false, mapCtxErr(ctx, op, err)
	}
	return lockEntry{id: id, ttl: time.Duration(ka.TTL) * time.Second}, false, nil
}
