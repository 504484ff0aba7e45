package redis

import (
	"context"
	"crypto/rand"
	_ "embed" // Lua scripts
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

var (
	//go:embed lock_acquire.lua
	lockAcquireSrc string
	//go:embed lock_release.lua
	lockReleaseSrc string
	//go:embed lock_refresh.lua
	lockRefreshSrc string
	//go:embed lock_handoff.lua
	lockHandoffSrc string
	// fenceCommonLua is prepended to the scripts that bump a fencing
	// counter.
	//go:embed fence_common.lua
	fenceCommonLua string

	lockAcquireScript = goredis.NewScript(fenceCommonLua + lockAcquireSrc)
	lockHandoffScript = goredis.NewScript(fenceCommonLua + lockHandoffSrc)
	lockReleaseScript = goredis.NewScript(lockReleaseSrc)
	lockRefreshScript = goredis.NewScript(lockRefreshSrc)
)

const (
	// lockFallbackMax caps how long a waiter sleeps without a release
	// notification before it tries again, so an expiry (which publishes
	// nothing) or a lost message is noticed within about a second.
	lockFallbackMax = time.Second
	// lockCleanupTimeout bounds the best-effort release of a lock whose
	// acquire reply was lost, and the releases done by Close.
	lockCleanupTimeout = 2 * time.Second
)

// lockStore is the Locker NewLocker returns.
type lockStore struct {
	conn *Connector
	ns   backends.Namespace
	hub  *lockHub
	log  *slog.Logger

	leases holdings[*lease]
}

var (
	_ backends.Locker    = (*lockStore)(nil)
	_ backends.Lease     = (*lease)(nil)
	_ backends.Handoffer = (*lease)(nil)
)

// NewLocker returns a Locker on conn (see the package doc for the key
// layout, the fencing tokens and the absent fairness). It also implements
// backends.Adopter; its leases implement backends.Handoffer and
// backends.Detacher. It starts nothing until the first blocking Acquire,
// which opens the Locker's one Pub/Sub subscription.
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
		return nil, backends.Invalid("connector", "nil", "must not be nil")
	}
	ns := opts.Namespace.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	l := &lockStore{conn: conn, ns: ns, log: conn.Logger()}
	l.leases.init()
	l.hub = newLockHub(conn, channelPattern(ns, backends.ComponentLock))
	return l, nil
}

// channelPattern matches every notification channel of one component in
// one namespace.
func channelPattern(ns backends.Namespace, component string) string {
	ns = ns.WithDefaults()
	return escapeGlob(ns.Root+"/"+ns.Env+"/"+component+"/") + "*"
}

// lockKeys returns the keys and channel of one lock. The name is wrapped in
// a {hash tag} so owner key and fencing counter share a Redis Cluster slot,
// as the scripts require.
func (l *lockStore) lockKeys(name string) (owner, fence, channel string) {
	p := l.ns.Prefix(backends.ComponentLock, lockHashTag(name))
	return p + "owner", p + "fence", p + "released"
}

// lockHashTag turns a name into the "{name}" key segment. A '}' inside the
// tag would end it early (and "{}" hashes the whole key), so '%' and '}' are
// percent-encoded; the mapping stays one-to-one and readable.
func lockHashTag(name string) string {
	if strings.ContainsAny(name, "%}") {
		name = strings.NewReplacer("%", "%25", "}", "%7D").Replace(name)
	}
	return "{" + name + "}"
}

func lockClosedErr(op string) error { return fmt.Errorf("redis: lock %s: %w", op, backends.ErrClosed) }

func (l *lockStore) prepare(name string, opts backends.LockOptions) (backends.LockOptions, error) {
	if err := backends.ValidateName("lock name", name); err != nil {
		return opts, err
	}
	o, err := opts.Validate()
	if err != nil {
		return o, err
	}
	if o.Owner == "" {
		o.Owner = rand.Text()
	}
	if l.leases.isClosed() {
		return o, lockClosedErr("acquire")
	}
	return o, nil
}

// TryAcquire takes the lock if it is free and returns ErrNotObtained at once
// when it is held.
func (l *lockStore) TryAcquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	o, err := l.prepare(name, opts)
	if err != nil {
		return nil, err
	}
	ls, _, err := l.lockTry(ctx, name, o)
	if err != nil {
		return nil, err
	}
	return ls, nil
}

// Acquire blocks until the lock is taken, ctx ends (the error then wraps
// ctx.Err() and ErrNotObtained) or the Locker is closed. A waiter sleeps until a release
// notification for this lock arrives, or at most min(remaining TTL, 1s)
// with ±10% jitter when none does (expiry publishes nothing). Waiters are
// not served in FIFO order: every waiter that is woken races for the lock.
func (l *lockStore) Acquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	o, err := l.prepare(name, opts)
	if err != nil {
		return nil, err
	}
	_, _, channel := l.lockKeys(name)
	// Listen before the first try: a release between a failed try and the
	// subscription would otherwise be missed until the fallback fires.
	w := l.hub.watch(channel)
	defer w.stop()
	for {
		if err := l.hub.ensure(ctx); err != nil {
			return nil, lockWaitErr(ctx, name, err)
		}
		ls, pttl, err := l.lockTry(ctx, name, o)
		if err == nil {
			return ls, nil
		}
		if ctxErr(ctx) != nil {
			return nil, lockGaveUp(ctx, name)
		}
		if !errors.Is(err, backends.ErrNotObtained) {
			return nil, err
		}
		switch w.wait(ctx, l.leases.closing, lockFallback(pttl)) {
		case wakeCtx:
			return nil, lockGaveUp(ctx, name)
		case wakeClosed:
			return nil, lockClosedErr("acquire")
		}
	}
}

func lockWaitErr(ctx context.Context, name string, err error) error {
	if ctxErr(ctx) != nil {
		return lockGaveUp(ctx, name)
	}
	return err
}

// lockGaveUp is the error of an Acquire whose ctx ended: it did not get the
// lock (ErrNotObtained), and why (ctx.Err()).
func lockGaveUp(ctx context.Context, name string) error {
	return fmt.Errorf("redis: lock acquire %q: %w: %w", name, backends.ErrNotObtained, ctxErr(ctx))
}

// lockFallback is the longest a waiter sleeps without a notification:
// until the holder's key expires (pttl, as the acquire script saw it; 0
// means under a millisecond is left), at most lockFallbackMax.
func lockFallback(pttl time.Duration) time.Duration {
	d := lockFallbackMax
	if pttl >= 0 && pttl < d {
		d = pttl + time.Millisecond
	}
	return max(jitter(d, 0.1), time.Millisecond)
}

// jitter spreads d uniformly over [d*(1-f), d*(1+f)].
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*mrand.Float64()))
}

// lockTry runs the acquire script once. On ErrNotObtained it also returns
// the holder's remaining TTL.
func (l *lockStore) lockTry(ctx context.Context, name string, o backends.LockOptions) (*lease, time.Duration, error) {
	cl, err := l.conn.client()
	if err != nil {
		return nil, 0, err
	}
	ownerKey, fenceKey, channel := l.lockKeys(name)
	// A fresh nonce per attempt makes the stored value unique even when two
	// acquirers use the same Owner, so owner checks can never confuse them.
	holder := rand.Text() + "|" + o.Owner
	ttl := pxTTL(o.TTL)
	start := time.Now()
	res, err := lockAcquireScript.Run(ctx, cl, []string{ownerKey, fenceKey}, holder, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		if replyLost(err) {
			// The server may have granted the lock before the reply was
			// lost (a cancelled context, a read timeout that fires just
			// before the context reports it, a dropped connection), or may
			// still grant it (a stalled server runs the script when it
			// continues); give it back so it does not sit there for a TTL.
			// The holder value is a fresh nonce, so this can never free
			// someone else's lock.
			l.lockGiveBack(ownerKey, holder, channel)
		}
		return nil, 0, mapErr(fmt.Sprintf("redis: lock acquire %q", name), err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("redis: lock acquire %q: unexpected script reply %v", name, res)
	}
	if res[0] == 0 {
		return nil, time.Duration(res[1]) * time.Millisecond,
			fmt.Errorf("redis: lock %q: %w", name, backends.ErrNotObtained)
	}
	ls, err := l.track(cl, name, o, holder, uint64(res[0]), ttl, start)
	return ls, 0, err
}

// track turns a grant (holder value and token, for ttl, requested at start)
// into a lease with its local expiry and, with o.AutoRenew, its renewal.
// After Close the grant is given back and ErrClosed returned.
func (l *lockStore) track(cl goredis.UniversalClient, name string, o backends.LockOptions, holder string,
	token uint64, ttl time.Duration, start time.Time) (*lease, error) {
	ownerKey, _, channel := l.lockKeys(name)
	ls := &lease{
		l: l, name: name, owner: o.Owner, holder: holder,
		ownerKey: ownerKey, channel: channel,
		token: token, ttl: ttl,
		expiry: expiry{done: make(chan struct{})},
	}
	var renew func()
	if o.AutoRenew {
		renew = ls.autoRenew
	}
	if !l.leases.add(ls, ttl, start, renew) {
		giveBackNow(l.log, "redis lock", lockReleaseScript, cl, ownerKey, holder, channel)
		return nil, lockClosedErr("acquire")
	}
	return ls, nil
}

// lockGiveBack gives back, in the background, a grant to holder whose
// reply was lost (see holdings.giveBackLater).
func (l *lockStore) lockGiveBack(ownerKey, holder, channel string) {
	l.leases.giveBackLater(l.conn, l.log, "redis lock", lockReleaseScript, ownerKey, holder, channel)
}

// Close stops auto-renewals, releases every lease still held (best effort,
// bounded), wakes blocked Acquire calls with ErrClosed and closes the
// Pub/Sub subscription. It does not disconnect the Connector.
func (l *lockStore) Close() error {
	l.leases.close(l.hub, l.conn)
	return nil
}

// lease is a held lock.
type lease struct {
	l                   *lockStore
	name, owner, holder string
	ownerKey, channel   string
	token               uint64
	expiry              // mu also guards ttl and detached
	ttl                 time.Duration
	detached            bool // handed to another Locker: never touch the server
}

func (ls *lease) Name() string          { return ls.name }
func (ls *lease) Owner() string         { return ls.owner }
func (ls *lease) Token() uint64         { return ls.token }
func (ls *lease) Done() <-chan struct{} { return ls.done }

func (ls *lease) TTL() time.Duration {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.ttl
}

// end marks the lease over: Done closes, the expiry timer and auto-renewal
// stop. It is idempotent.
func (ls *lease) end() {
	ls.finish()
	ls.l.leases.remove(ls)
}

// Refresh extends the lease to ttl from now (0 = the current TTL).
func (ls *lease) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := backends.ValidateLockTTL("ttl", ttl); err != nil {
		return err
	}
	if ls.l.leases.isClosed() {
		return lockClosedErr("refresh")
	}
	cl, err := ls.l.conn.client()
	if err != nil {
		return err
	}
	ls.mu.Lock()
	if ttl == 0 {
		ttl = ls.ttl
	}
	ended := ls.ended
	ls.mu.Unlock()
	if ended {
		return fmt.Errorf("redis: lock %q refresh: %w", ls.name, backends.ErrNotHeld)
	}
	ttl = pxTTL(ttl)
	start := time.Now()
	ok, err := lockRefreshScript.Run(ctx, cl, []string{ls.ownerKey}, ls.holder, ttl.Milliseconds()).Int()
	if err != nil {
		return mapErr(fmt.Sprintf("redis: lock %q refresh", ls.name), err)
	}
	if ok != 1 {
		ls.end()
		return fmt.Errorf("redis: lock %q refresh: %w", ls.name, backends.ErrNotHeld)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.ended {
		// The local timer fired while the request was in flight; Done is
		// already closed, so the lease counts as lost.
		return fmt.Errorf("redis: lock %q refresh: %w", ls.name, backends.ErrNotHeld)
	}
	ls.ttl = ttl
	ls.timer.Reset(ttl - time.Since(start))
	return nil
}

// Release frees the lock and notifies waiters. ErrNotHeld when it had
// already expired or been taken over.
func (ls *lease) Release(ctx context.Context) error {
	ls.mu.Lock()
	detached := ls.detached
	ls.mu.Unlock()
	if detached {
		return fmt.Errorf("redis: lock %q release: detached: %w", ls.name, backends.ErrNotHeld)
	}
	return ls.l.leases.release(ctx, ls.l.conn, ls, lockClosedErr("release"), fmt.Sprintf("redis: lock %q release", ls.name))
}

// Handoff passes the lock to a new owner in one script run: the holder is
// checked, the fencing counter bumped and the new holder stored with its
// TTL, atomically. The lock is never free in between, so no release is
// published and waiters elsewhere keep waiting. See backends.Handoffer.
func (ls *lease) Handoff(ctx context.Context, opts backends.LockOptions) (backends.Lease, error) {
	l := ls.l
	op := fmt.Sprintf("redis: lock %q handoff", ls.name)
	if l.leases.isClosed() {
		return nil, lockClosedErr("handoff")
	}
	o, err := l.prepare(ls.name, opts)
	if err != nil {
		return nil, err
	}
	cl, err := l.conn.client()
	if err != nil {
		return nil, err
	}
	ls.mu.Lock()
	ended := ls.ended
	ls.mu.Unlock()
	if ended {
		return nil, fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	_, fenceKey, _ := l.lockKeys(ls.name)
	holder := rand.Text() + "|" + o.Owner
	ttl := pxTTL(o.TTL)
	start := time.Now()
	token, err := lockHandoffScript.Run(ctx, cl, []string{ls.ownerKey, fenceKey}, ls.holder, holder, ttl.Milliseconds()).Int64()
	if err != nil {
		if replyLost(err) {
			// The new holder may have been stored (or may still be): free
			// the lock rather than leave it to somebody nobody knows.
			l.lockGiveBack(ls.ownerKey, holder, ls.channel)
		}
		return nil, mapErr(op, err)
	}
	ls.end()
	if token <= 0 {
		return nil, fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	next, err := l.track(cl, ls.name, o, holder, uint64(token), ttl, start)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return next, nil
}

func (ls *lease) giveBack(ctx context.Context, cl goredis.UniversalClient) *goredis.Cmd {
	return lockReleaseScript.Run(ctx, cl, []string{ls.ownerKey}, ls.holder, ls.channel)
}

// autoRenew refreshes at TTL/3 until the lease ends. A failed refresh that
// is not a loss (backend briefly unreachable) is retried at the next tick;
// if none succeeds before the TTL passes, the expiry timer ends the lease.
func (ls *lease) autoRenew() {
	for {
		every := max(ls.TTL()/3, time.Millisecond)
		if !pause(every, ls.done, ls.l.leases.closing) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := ls.Refresh(ctx, 0)
		cancel()
		if err != nil {
			ls.l.log.Debug("redis lock: auto-renew failed", "lock", ls.name, "err", err)
		}
	}
}

// lockHub is the one Pub/Sub subscription of a Locker (and of an Elector,
// which reuses it): a PSUBSCRIBE on the component's channel pattern, fanned
// out to local waiters by channel name. One pattern per value keeps the
// subscription fixed, so registering a waiter is a local map insert and can
// never race with SUBSCRIBE/UNSUBSCRIBE traffic.
//
// Whenever messages may have been missed (connection error, resubscribe),
// every waiter is woken; waiters treat a wake-up only as "try again".
type lockHub struct {
	conn    *Connector
	pattern string

	startMu sync.Mutex // serializes (re)subscribing

	mu      sync.Mutex
	closed  bool
	cur     *hubSub
	waiters map[string]map[*hubWaiter]struct{}
}

// hubSub is one live subscription and its reader goroutine.
type hubSub struct {
	cl   goredis.UniversalClient
	ps   *goredis.PubSub
	stop chan struct{}
	done chan struct{}
}

// hubWaiter receives a wake-up (coalesced, never blocking the reader) for
// one channel.
type hubWaiter struct {
	C       chan struct{}
	h       *lockHub
	channel string
}

const (
	// hubPingEvery is how long the reader waits for a message before it
	// pings, so a silently dead connection is noticed and replaced.
	hubPingEvery = 30 * time.Second
	// hubBackoffMax caps the pause between reconnect attempts of the reader.
	hubBackoffMax = time.Second
)

func newLockHub(conn *Connector, pattern string) *lockHub {
	return &lockHub{conn: conn, pattern: pattern, waiters: make(map[string]map[*hubWaiter]struct{})}
}

// watch registers a waiter for channel. Call ensure before relying on it.
func (h *lockHub) watch(channel string) *hubWaiter {
	w := &hubWaiter{C: make(chan struct{}, 1), h: h, channel: channel}
	h.mu.Lock()
	set := h.waiters[channel]
	if set == nil {
		set = make(map[*hubWaiter]struct{})
		h.waiters[channel] = set
	}
	set[w] = struct{}{}
	h.mu.Unlock()
	return w
}

func (w *hubWaiter) stop() {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	if set := w.h.waiters[w.channel]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(w.h.waiters, w.channel)
		}
	}
}

func (h *lockHub) live(cl goredis.UniversalClient) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur != nil && h.cur.cl == cl
}

// ensure makes sure a confirmed subscription exists on the connector's
// current client. It is cheap when one does.
func (h *lockHub) ensure(ctx context.Context) error {
	cl, err := h.conn.client()
	if err != nil {
		return err
	}
	if h.live(cl) {
		return nil
	}
	h.startMu.Lock()
	defer h.startMu.Unlock()
	if h.live(cl) {
		return nil
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("redis: subscription: %w", backends.ErrClosed)
	}
	old := h.cur
	h.cur = nil
	h.mu.Unlock()
	old.shutdown()

	ps := cl.PSubscribe(ctx, h.pattern)
	// The first message is the server's confirmation; only after it is
	// every later publish guaranteed to reach us.
	rctx, cancel := context.WithTimeout(ctx, h.conn.healthTimeout())
	defer cancel()
	msg, err := ps.ReceiveTimeout(rctx, h.conn.healthTimeout())
	if err == nil {
		if _, ok := msg.(*goredis.Subscription); !ok {
			err = fmt.Errorf("unexpected pubsub reply %T", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return mapErr("redis: subscribe", err)
	}
	s := &hubSub{cl: cl, ps: ps, stop: make(chan struct{}), done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = ps.Close()
		return fmt.Errorf("redis: subscription: %w", backends.ErrClosed)
	}
	h.cur = s
	h.mu.Unlock()
	go h.read(s)
	return nil
}

func (s *hubSub) shutdown() {
	if s == nil {
		return
	}
	close(s.stop)
	_ = s.ps.Close()
	<-s.done
}

// read dispatches messages until the subscription is shut down or its
// client is gone.
func (h *lockHub) read(s *hubSub) {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for {
		msg, err := s.ps.ReceiveTimeout(context.Background(), hubPingEvery)
		select {
		case <-s.stop:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pctx, cancel := context.WithTimeout(context.Background(), h.conn.healthTimeout())
				_ = s.ps.Ping(pctx)
				cancel()
				continue
			}
			// Messages may have been lost: let every waiter try again.
			h.wakeAll()
			if errors.Is(err, goredis.ErrClosed) || h.conn.Client() != s.cl {
				h.drop(s)
				return
			}
			t := time.NewTimer(backoff)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, hubBackoffMax)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Message:
			h.wake(m.Channel)
		case *goredis.Subscription:
			// Resubscribed after a reconnect: the gap may have hidden a
			// release.
			h.wakeAll()
		}
	}
}

// drop forgets s (its client is closed) so the next ensure starts anew.
func (h *lockHub) drop(s *hubSub) {
	h.mu.Lock()
	if h.cur == s {
		h.cur = nil
	}
	h.mu.Unlock()
	_ = s.ps.Close()
}

func (h *lockHub) wake(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.waiters[channel] {
		w.notify()
	}
}

func (h *lockHub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.waiters {
		for w := range set {
			w.notify()
		}
	}
}

func (w *hubWaiter) notify() {
	select {
	case w.C <- struct{}{}:
	default:
	}
}

// close ends the subscription for good.
func (h *lockHub) close() {
	h.startMu.Lock()
	defer h.startMu.Unlock()
	h.mu.Lock()
	h.closed = true
	s := h.cur
	h.cur = nil
	h.mu.Unlock()
	s.shutdown()
}
