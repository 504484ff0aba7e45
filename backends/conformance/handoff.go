package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// handoffCases are the lock cases of targets whose leases implement
// backends.Handoffer (Target.LockHandoff). What differs between backends
// — whether a contender queued in the backend itself is passed over —
// is tested by each backend's own tests.
func (s lockSuite) handoffCases() []testCase {
	return []testCase{
		{"handoff", true, s.handoff},
		{"handoff-chain", true, s.handoffChain},
		{"handoff-not-held", true, s.handoffNotHeld},
		{"handoff-invalid-args", true, s.handoffInvalidArgs},
		{"handoff-ttl", true, s.handoffTTL},
		{"handoff-after-close", true, s.handoffAfterClose},
	}
}

// handoffer returns lease as a Handoffer, failing the test when it is not
// one.
func handoffer(t *testing.T, lease backends.Lease) backends.Handoffer {
	t.Helper()
	h, ok := lease.(backends.Handoffer)
	require.True(t, ok, "conformance: the target sets LockHandoff but its lease %T is not a backends.Handoffer", lease)
	return h
}

// handoff: the new owner holds the lock with a higher token, the old lease
// is over, and a release by the new owner frees the lock.
func (s lockSuite) handoff(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "worker-a"})
	b, err := handoffer(t, a).Handoff(ctx, backends.LockOptions{Owner: "worker-b"})
	require.NoError(t, err)
	require.NotNil(t, b)

	assert.Equal(t, "job", b.Name())
	assert.Equal(t, "worker-b", b.Owner())
	assert.Equal(t, backends.DefaultLockTTL, b.TTL())
	assert.Greater(t, b.Token(), a.Token())
	assert.True(t, closed(a.Done()), "the handed-off lease must be over")
	assert.False(t, closed(b.Done()))
	requireHeld(t, ls[1], "job")
	assert.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld)
	assert.ErrorIs(t, a.Refresh(ctx, 0), backends.ErrNotHeld)
	requireHeld(t, ls[1], "job")

	require.NoError(t, b.Refresh(ctx, 0))
	require.NoError(t, b.Release(ctx))
	c := tryAcquire(t, ls[1], "job", backends.LockOptions{})
	assert.Greater(t, c.Token(), b.Token())
	require.NoError(t, c.Release(ctx))
}

// handoffChain: a run of hand-offs keeps the lock held throughout, with
// strictly increasing tokens; only the last owner's release frees it.
func (s lockSuite) handoffChain(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	cur := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	for i := range 10 {
		next, err := handoffer(t, cur).Handoff(ctx, backends.LockOptions{})
		require.NoError(t, err, "hand-off %d", i)
		require.Greater(t, next.Token(), cur.Token(), "hand-off %d", i)
		requireHeld(t, ls[1], "job")
		cur = next
	}
	require.NoError(t, cur.Release(ctx))
	tryAcquire(t, ls[1], "job", backends.LockOptions{})
}

// handoffNotHeld: a lease that was released, or that expired, cannot be
// handed off, and nothing is granted by trying.
func (s lockSuite) handoffNotHeld(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, expiryWait+opTimeout)

	a := tryAcquire(t, ls[0], "released", backends.LockOptions{})
	require.NoError(t, a.Release(ctx))
	_, err := handoffer(t, a).Handoff(ctx, backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotHeld)
	require.NoError(t, tryAcquire(t, ls[1], "released", backends.LockOptions{}).Release(ctx))

	e := tryAcquire(t, ls[0], "expired", backends.LockOptions{TTL: expiryTTL})
	taker := waitFree(t, ls[1], "expired", backends.LockOptions{})
	_, err = handoffer(t, e).Handoff(ctx, backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotHeld)
	assert.True(t, closed(e.Done()))
	requireHeld(t, ls[0], "expired")
	require.NoError(t, taker.Release(ctx), "the new holder keeps the lock")
}

// handoffInvalidArgs: bad options for the new owner are rejected as
// invalid arguments and change nothing.
func (s lockSuite) handoffInvalidArgs(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	for _, opts := range []backends.LockOptions{
		{TTL: -time.Second},
		{Owner: strings.Repeat("o", backends.MaxNameLen+1)},
	} {
		_, err := handoffer(t, a).Handoff(ctx, opts)
		require.ErrorIs(t, err, backends.ErrInvalidArgument, "%+v", opts)
		var inv *backends.InvalidArgumentError
		require.ErrorAs(t, err, &inv)
	}
	assert.False(t, closed(a.Done()))
	requireHeld(t, ls[1], "job")
	require.NoError(t, a.Release(ctx), "the lease is still held after rejected hand-offs")
}

// handoffTTL: the new owner gets the TTL it asks for (not the old lease's),
// auto-renewal when it asks for it, and a lease that expires when it does
// not.
func (s lockSuite) handoffTTL(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, 2*expiryWait+opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: 3 * expiryTTL})
	b, err := handoffer(t, a).Handoff(ctx, backends.LockOptions{TTL: expiryTTL, AutoRenew: true})
	require.NoError(t, err)
	assert.Equal(t, expiryTTL, b.TTL())

	// A marker taken now with expiryTTL measures that TTL passing.
	tryAcquire(t, ls[2], "marker", backends.LockOptions{TTL: expiryTTL})
	waitFree(t, ls[1], "marker", backends.LockOptions{})
	requireHeld(t, ls[1], "job")
	assert.False(t, closed(b.Done()), "an auto-renewed hand-off must outlive its TTL")

	c, err := handoffer(t, b).Handoff(ctx, backends.LockOptions{TTL: expiryTTL})
	require.NoError(t, err)
	assert.Greater(t, c.Token(), b.Token())
	d := waitFree(t, ls[1], "job", backends.LockOptions{})
	assert.Greater(t, d.Token(), c.Token())
	require.Eventually(t, func() bool { return closed(c.Done()) }, expiryWait, tick, "Done of an expired hand-off never closed")
	require.NoError(t, d.Release(ctx))
}

// handoffAfterClose: once its Locker is closed (which releases what it
// held), a lease cannot be handed off: ErrClosed, and nothing is granted.
func (s lockSuite) handoffAfterClose(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	require.NoError(t, ls[0].Close())
	_, err := handoffer(t, a).Handoff(ctx, backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrClosed)
	require.NoError(t, tryAcquire(t, ls[1], "job", backends.LockOptions{}).Release(ctx), "nothing may be left held")
}
