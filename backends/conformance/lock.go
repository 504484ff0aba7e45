package conformance

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// RunLock runs the lock cases against target.NewLocker. Each locker stands
// for a separate process (its own connector). The timing-sensitive and heavy
// cases are serial, so they run alone; the others run in parallel after them.
func RunLock(t *testing.T, target Target) {
	t.Helper()
	require.NotNil(t, target.NewLocker, "conformance: %s has no locker factory", target.Name)
	s := lockSuite{target: target}
	cases := []testCase{
		// Serial: latency is measured, or many contenders load the machine.
		{"wake-latency", false, s.wakeLatency},
		{"ctx-cancel", false, s.ctxCancel},
		{"fencing-tokens", false, s.fencingTokens},
		{"mutual-exclusion", false, s.mutualExclusion},

		{"try-acquire-conflict", true, s.tryAcquireConflict},
		{"release-by-non-owner", true, s.releaseByNonOwner},
		{"stale-lease-same-owner", true, s.staleLeaseSameOwner},
		{"release-reacquire", true, s.releaseReacquire},
		{"expiry-takeover", true, s.expiryTakeover},
		{"refresh-extends", true, s.refreshExtends},
		{"refresh-after-expiry", true, s.refreshAfterExpiry},
		{"refresh-sets-ttl", true, s.refreshSetsTTL},
		{"acquire-give-up-not-obtained", true, s.acquireGiveUpNotObtained},
		{"auto-renew", true, s.autoRenew},
		{"crashed-holder-expires", true, s.crashedHolderExpires},
		{"names-independent", true, s.namesIndependent},
		{"invalid-args", true, s.invalidArgs},
	}
	if target.LockHandoff {
		cases = append(cases, s.handoffCases()...)
	}
	if target.LockAdopt {
		cases = append(cases, s.adoptCases()...)
	}
	runCases(t, cases)
}

type lockSuite struct{ target Target }

// lockers builds n lockers sharing one fresh environment.
func (s lockSuite) lockers(t *testing.T, n int) []backends.Locker {
	t.Helper()
	ns := uniqueNamespace()
	out := make([]backends.Locker, n)
	for i := range out {
		out[i], _ = s.target.NewLocker(t, backends.LockerOptions{Namespace: ns})
	}
	return out
}

// tryAcquire takes the lock, failing the test if it cannot.
func tryAcquire(t *testing.T, l backends.Locker, name string, opts backends.LockOptions) backends.Lease {
	t.Helper()
	lease, err := l.TryAcquire(ctxFor(t, opTimeout), name, opts)
	require.NoError(t, err, "try-acquire %q", name)
	require.NotNil(t, lease)
	return lease
}

// requireHeld checks that someone holds name: a TryAcquire through l fails
// with ErrNotObtained.
func requireHeld(t *testing.T, l backends.Locker, name string) {
	t.Helper()
	lease, err := l.TryAcquire(ctxFor(t, opTimeout), name, backends.LockOptions{})
	if err == nil {
		_ = lease.Release(ctxFor(t, opTimeout))
	}
	require.ErrorIs(t, err, backends.ErrNotObtained, "%q should be held", name)
}

// waitFree waits until l obtains name (its holder released or expired) and
// returns the new lease.
func waitFree(t *testing.T, l backends.Locker, name string, opts backends.LockOptions) backends.Lease {
	t.Helper()
	// Eventually polls from another goroutine, which may still be running
	// when it gives up: hand the lease over through a channel.
	got := make(chan backends.Lease, 1)
	require.Eventually(t, func() bool {
		lease, err := l.TryAcquire(ctxFor(t, opTimeout), name, opts)
		if err != nil {
			return false
		}
		got <- lease
		return true
	}, expiryWait, tick, "%q never became free", name)
	return <-got
}

type acquired struct {
	lease backends.Lease
	err   error
	at    time.Time
}

// goAcquire runs a blocking Acquire in a goroutine. The result arrives on
// the returned channel (buffered, so the goroutine never blocks on it).
func goAcquire(ctx context.Context, l backends.Locker, name string, opts backends.LockOptions) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		lease, err := l.Acquire(ctx, name, opts)
		ch <- acquired{lease: lease, err: err, at: time.Now()}
	}()
	return ch
}

// await receives from ch within d.
func await[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		require.FailNow(t, "timed out", "%s: nothing after %v", what, d)
	}
	var zero T
	return zero
}

// stillBlocked checks that a pending Acquire/Campaign has not returned for d.
func stillBlocked[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	require.Never(t, func() bool { return len(ch) > 0 }, d, tick, "%s returned while the lock/leadership was held", what)
}

func (s lockSuite) tryAcquireConflict(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "worker-a"})
	assert.Equal(t, "job", a.Name())
	assert.Equal(t, "worker-a", a.Owner())
	assert.Equal(t, backends.DefaultLockTTL, a.TTL(), "a zero TTL means DefaultLockTTL")
	assert.NotZero(t, a.Token())
	assert.False(t, closed(a.Done()), "Done closed on a held lease")

	_, err := ls[1].TryAcquire(ctx, "job", backends.LockOptions{Owner: "worker-b"})
	assert.ErrorIs(t, err, backends.ErrNotObtained)
	_, err = ls[0].TryAcquire(ctx, "job", backends.LockOptions{Owner: "worker-a"})
	assert.ErrorIs(t, err, backends.ErrNotObtained, "locks are not reentrant")

	// A generated owner is unique per lease.
	x := tryAcquire(t, ls[1], "other", backends.LockOptions{})
	y := tryAcquire(t, ls[1], "another", backends.LockOptions{})
	assert.NotEmpty(t, x.Owner())
	assert.NotEqual(t, x.Owner(), y.Owner())

	assert.False(t, closed(a.Done()))
	require.NoError(t, a.Release(ctx))
	require.NoError(t, x.Release(ctx))
	require.NoError(t, y.Release(ctx))
}

// releaseByNonOwner: an old lease of a previous holder cannot release or
// refresh the lock somebody else now holds.
func (s lockSuite) releaseByNonOwner(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, opTimeout)
	old := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "a"})
	require.NoError(t, old.Release(ctx))
	cur := tryAcquire(t, ls[1], "job", backends.LockOptions{Owner: "b"})

	assert.ErrorIs(t, old.Release(ctx), backends.ErrNotHeld)
	assert.ErrorIs(t, old.Refresh(ctx, 0), backends.ErrNotHeld)
	requireHeld(t, ls[2], "job")
	assert.False(t, closed(cur.Done()), "the holder lost its lease to a non-owner")
	require.NoError(t, cur.Release(ctx))
}

// staleLeaseSameOwner: ownership is per acquisition, not per owner string.
// A restarted worker reusing its owner name must not free the lock with a
// lease from its previous life.
func (s lockSuite) staleLeaseSameOwner(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, opTimeout)
	opts := backends.LockOptions{Owner: "worker"}
	old := tryAcquire(t, ls[0], "job", opts)
	require.NoError(t, old.Release(ctx))
	cur := tryAcquire(t, ls[1], "job", opts)

	assert.ErrorIs(t, old.Release(ctx), backends.ErrNotHeld)
	assert.ErrorIs(t, old.Refresh(ctx, 0), backends.ErrNotHeld)
	requireHeld(t, ls[2], "job")
	assert.False(t, closed(cur.Done()))
	require.NoError(t, cur.Release(ctx))
}

func (s lockSuite) releaseReacquire(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	require.NoError(t, a.Release(ctx))
	require.Eventually(t, func() bool { return closed(a.Done()) }, time.Second, tick, "Done not closed after Release")
	assert.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld, "second release")

	b := tryAcquire(t, ls[1], "job", backends.LockOptions{})
	assert.Greater(t, b.Token(), a.Token())
	require.NoError(t, b.Release(ctx))
	c := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	assert.Greater(t, c.Token(), b.Token())
	require.NoError(t, c.Release(ctx))
}

// expiryTakeover: a lease that is not refreshed expires; a blocked waiter
// then gets the lock, and the first holder's Done closes.
func (s lockSuite) expiryTakeover(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, expiryWait+opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: expiryTTL})
	assert.Equal(t, expiryTTL, a.TTL())
	waiter := goAcquire(ctx, ls[1], "job", backends.LockOptions{TTL: expiryTTL})

	got := await(t, waiter, expiryWait, "acquire after expiry")
	require.NoError(t, got.err)
	assert.Greater(t, got.lease.Token(), a.Token())
	require.Eventually(t, func() bool { return closed(a.Done()) }, expiryWait, tick, "Done of an expired lease never closed")
	assert.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld)
	assert.False(t, closed(got.lease.Done()))
	require.NoError(t, got.lease.Release(ctx))
}

// refreshExtends: Refresh with a longer TTL keeps the lock past its
// original expiry. A 2 s marker lock taken after the refresh measures time.
func (s lockSuite) refreshExtends(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, expiryWait+opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: expiryTTL})
	require.NoError(t, a.Refresh(ctx, 4*expiryTTL))
	tryAcquire(t, ls[2], "marker", backends.LockOptions{TTL: expiryTTL})

	waitFree(t, ls[1], "marker", backends.LockOptions{}) // expiryTTL has passed
	requireHeld(t, ls[1], "job")
	assert.False(t, closed(a.Done()))
	require.NoError(t, a.Refresh(ctx, 0), "refresh with the original TTL")
	require.NoError(t, a.Release(ctx))
}

// refreshSetsTTL: after a Refresh with another TTL, Lease.TTL reports
// that TTL (whole seconds, which no backend rounds); a Refresh with 0
// keeps it.
func (s lockSuite) refreshSetsTTL(t *testing.T) {
	ls := s.lockers(t, 1)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: time.Hour})
	assert.Equal(t, time.Hour, a.TTL())
	require.NoError(t, a.Refresh(ctx, time.Minute))
	assert.Equal(t, time.Minute, a.TTL(), "TTL after Refresh(1m) of a 1h lease")
	require.NoError(t, a.Refresh(ctx, 0))
	assert.Equal(t, time.Minute, a.TTL(), "Refresh(0) keeps the current TTL")
	require.NoError(t, a.Refresh(ctx, 2*time.Hour))
	assert.Equal(t, 2*time.Hour, a.TTL())
	require.NoError(t, a.Release(ctx))
}

// acquireGiveUpNotObtained: an Acquire that gives up — its deadline passed,
// or it was cancelled — reports both why (the context error) and what
// (ErrNotObtained: the caller does not hold the lock).
func (s lockSuite) acquireGiveUpNotObtained(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	holder := tryAcquire(t, ls[0], "job", backends.LockOptions{})

	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	lease, err := ls[1].Acquire(dctx, "job", backends.LockOptions{})
	dcancel()
	assert.Nil(t, lease)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, backends.ErrNotObtained, "an acquire that ran out of time did not obtain the lock")

	cctx, cancel := context.WithCancel(ctx)
	waiter := goAcquire(cctx, ls[1], "job", backends.LockOptions{})
	stillBlocked(t, waiter, 100*time.Millisecond, "acquire")
	cancel()
	got := await(t, waiter, opTimeout, "cancelled acquire")
	assert.Nil(t, got.lease)
	assert.ErrorIs(t, got.err, context.Canceled)
	assert.ErrorIs(t, got.err, backends.ErrNotObtained, "a cancelled acquire did not obtain the lock")

	require.NoError(t, holder.Release(ctx))
}

// refreshAfterExpiry: once a lease expired, Refresh reports ErrNotHeld and
// does not bring the lock back, even when nobody else holds it.
func (s lockSuite) refreshAfterExpiry(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, expiryWait+opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: expiryTTL})
	probe := waitFree(t, ls[1], "job", backends.LockOptions{})
	require.NoError(t, probe.Release(ctx))

	assert.ErrorIs(t, a.Refresh(ctx, 0), backends.ErrNotHeld)
	assert.ErrorIs(t, a.Refresh(ctx, time.Minute), backends.ErrNotHeld)
	c := tryAcquire(t, ls[2], "job", backends.LockOptions{})
	require.NoError(t, c.Release(ctx))
	require.Eventually(t, func() bool { return closed(a.Done()) }, expiryWait, tick)
}

// autoRenew keeps a short lease alive for several TTLs until Release.
func (s lockSuite) autoRenew(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, 3*expiryWait)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: expiryTTL, AutoRenew: true})
	for range 2 { // two marker lifetimes: 2×TTL at least
		tryAcquire(t, ls[2], "marker", backends.LockOptions{TTL: expiryTTL})
		m := waitFree(t, ls[1], "marker", backends.LockOptions{})
		require.NoError(t, m.Release(ctx))
	}
	requireHeld(t, ls[1], "job")
	assert.False(t, closed(a.Done()), "an auto-renewed lease ended")
	require.NoError(t, a.Release(ctx))
	require.Eventually(t, func() bool { return closed(a.Done()) }, time.Second, tick)
	b := tryAcquire(t, ls[1], "job", backends.LockOptions{})
	require.NoError(t, b.Release(ctx))
}

// crashedHolderExpires: a holder whose process dies (auto-renewal and all)
// releases nothing; its lock expires after the TTL and a waiter gets it.
func (s lockSuite) crashedHolderExpires(t *testing.T) {
	ns := uniqueNamespace()
	ctx := ctxFor(t, expiryWait+opTimeout)
	la, crash := s.target.NewLocker(t, backends.LockerOptions{Namespace: ns})
	lb, _ := s.target.NewLocker(t, backends.LockerOptions{Namespace: ns})
	require.NotNil(t, crash, "the locker factory returns no Crash")
	a := tryAcquire(t, la, "job", backends.LockOptions{TTL: expiryTTL, AutoRenew: true})
	waiter := goAcquire(ctx, lb, "job", backends.LockOptions{})
	stillBlocked(t, waiter, 100*time.Millisecond, "acquire")

	crash()
	got := await(t, waiter, expiryWait, "acquire after the holder crashed")
	require.NoError(t, got.err)
	assert.Greater(t, got.lease.Token(), a.Token())
	require.NoError(t, got.lease.Release(ctx))
}

// namesIndependent: locks with related names (prefixes, glob characters)
// do not interfere.
func (s lockSuite) namesIndependent(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	var others []backends.Lease
	for _, name := range []string{"jo", "job2", "jo*", "job?", "[j]ob", `job\`} {
		others = append(others, tryAcquire(t, ls[1], name, backends.LockOptions{}))
	}
	requireHeld(t, ls[1], "job")
	for _, l := range others {
		require.NoError(t, l.Release(ctx))
	}
	require.NoError(t, a.Release(ctx))
}

func (s lockSuite) invalidArgs(t *testing.T) {
	ls := s.lockers(t, 1)
	ctx := ctxFor(t, opTimeout)
	cases := map[string]struct {
		name string
		opts backends.LockOptions
	}{
		"empty name":    {"", backends.LockOptions{}},
		"slash in name": {"a/b", backends.LockOptions{}},
		"nul in name":   {"a\x00b", backends.LockOptions{}},
		"long name":     {strings.Repeat("n", backends.MaxNameLen+1), backends.LockOptions{}},
		"negative ttl":  {"job", backends.LockOptions{TTL: -time.Second}},
		"ttl of 1ms":    {"job", backends.LockOptions{TTL: time.Millisecond}},
		"ttl below min": {"job", backends.LockOptions{TTL: backends.MinLockTTL - 1}},
		"long owner":    {"job", backends.LockOptions{Owner: strings.Repeat("o", backends.MaxNameLen+1)}},
	}
	for what, c := range cases {
		_, err := ls[0].TryAcquire(ctx, c.name, c.opts)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "try-acquire, %s", what)
		_, err = ls[0].Acquire(ctx, c.name, c.opts)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "acquire, %s", what)
	}
	lease := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	assert.ErrorIs(t, lease.Refresh(ctx, -time.Second), backends.ErrInvalidArgument, "refresh, negative ttl")
	assert.ErrorIs(t, lease.Refresh(ctx, time.Millisecond), backends.ErrInvalidArgument, "refresh, ttl below the minimum")
	require.NoError(t, lease.Release(ctx))
}

// fencingTokens: 5 contenders take the lock 50 times in all; the tokens, in
// the order the lock was granted, strictly increase.
func (s lockSuite) fencingTokens(t *testing.T) {
	const contenders, each = 5, 10
	ls := s.lockers(t, contenders)
	ctx := ctxFor(t, 6*opTimeout)
	var (
		mu     sync.Mutex // for the race detector: the lock itself orders the appends
		tokens []uint64
		wg     sync.WaitGroup
		errs   = make(chan error, contenders*each)
	)
	for _, l := range ls {
		wg.Go(func() {
			for range each {
				lease, err := l.Acquire(ctx, "fenced", backends.LockOptions{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tokens = append(tokens, lease.Token())
				mu.Unlock()
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, tokens, contenders*each)
	for i := 1; i < len(tokens); i++ {
		assert.Greater(t, tokens[i], tokens[i-1], "token %d is not greater than token %d: %v", i, i-1, tokens)
	}
}

// wakeLatency: a blocked Acquire returns within 50 ms of the holder's
// Release — it is woken, not polling. The median of 5 trials is checked.
func (s lockSuite) wakeLatency(t *testing.T) {
	const trials = 5
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, trials*opTimeout)
	lat := make([]time.Duration, 0, trials)
	for range trials {
		holder := tryAcquire(t, ls[0], "wake", backends.LockOptions{})
		waiter := goAcquire(ctx, ls[1], "wake", backends.LockOptions{})
		stillBlocked(t, waiter, 200*time.Millisecond, "acquire")
		require.NoError(t, holder.Release(ctx))
		released := time.Now()
		got := await(t, waiter, opTimeout, "acquire after release")
		require.NoError(t, got.err)
		// Negative when the waiter was woken before the holder's Release
		// call returned (etcd: by the delete, before the lease revoke).
		lat = append(lat, got.at.Sub(released))
		require.NoError(t, got.lease.Release(ctx))
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	median := sorted[trials/2]
	t.Logf("%s: release returned → waiter acquired: %v, median %v", s.target.Name, lat, median)
	assert.Less(t, median, 50*time.Millisecond, "a waiter is woken by the release, not by polling")
}

// ctxCancel: a blocked Acquire returns promptly with the context's error
// when the context ends, and leaves nothing behind that would delay the next
// owner.
func (s lockSuite) ctxCancel(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, 3*opTimeout)
	holder := tryAcquire(t, ls[0], "job", backends.LockOptions{})

	const deadline = 300 * time.Millisecond
	const prompt = 500 * time.Millisecond
	dctx, dcancel := context.WithTimeout(ctx, deadline)
	defer dcancel()
	start := time.Now()
	_, err := ls[1].Acquire(dctx, "job", backends.LockOptions{})
	elapsed := time.Since(start)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, elapsed, deadline+prompt, "acquire returned %v after a %v deadline", elapsed, deadline)

	cctx, cancel := context.WithCancel(ctx)
	waiter := goAcquire(cctx, ls[1], "job", backends.LockOptions{})
	stillBlocked(t, waiter, 200*time.Millisecond, "acquire")
	cancel()
	canceled := time.Now()
	got := await(t, waiter, opTimeout, "canceled acquire")
	assert.ErrorIs(t, got.err, context.Canceled)
	assert.Less(t, got.at.Sub(canceled), prompt, "acquire returned %v after cancel", got.at.Sub(canceled))
	if got.lease != nil {
		_ = got.lease.Release(ctx)
	}

	// No stale waiter entry: once the holder releases, a third owner gets
	// the lock at once, and nobody else holds it.
	require.NoError(t, holder.Release(ctx))
	c := tryAcquire(t, ls[2], "job", backends.LockOptions{})
	require.NoError(t, c.Release(ctx))
	d := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	require.NoError(t, d.Release(ctx))
}

// mutualExclusion: 10 contenders × 50 rounds increment a shared counter
// non-atomically (load, yield, store) inside the lock; the counter ends
// exact and no two holders ever overlap.
func (s lockSuite) mutualExclusion(t *testing.T) {
	const contenders, rounds = 10, 50
	ls := s.lockers(t, contenders)
	ctx := ctxFor(t, 12*opTimeout)
	var (
		counter atomic.Int64 // Load then Store: atomic for the race detector, not as an increment
		inside  atomic.Int32
		overlap atomic.Int32
		wg      sync.WaitGroup
		errs    = make(chan error, contenders)
	)
	for _, l := range ls {
		wg.Go(func() {
			for range rounds {
				lease, err := l.Acquire(ctx, "counter", backends.LockOptions{})
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) > 1 {
					overlap.Add(1)
				}
				v := counter.Load()
				runtime.Gosched()
				counter.Store(v + 1)
				inside.Add(-1)
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Zero(t, overlap.Load(), "holders overlapped")
	assert.Equal(t, int64(contenders*rounds), counter.Load(), "increments were lost")
}
