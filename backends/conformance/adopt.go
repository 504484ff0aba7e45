package conformance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// adoptCases are the lock cases of targets whose Lockers implement
// backends.Adopter and whose leases implement backends.Detacher
// (Target.LockAdopt): a lease's bookkeeping moves from one Locker to
// another while the lock stays held.
func (s lockSuite) adoptCases() []testCase {
	return []testCase{
		{"adopt", true, s.adopt},
		{"adopt-not-held", true, s.adoptNotHeld},
		{"adopt-invalid-args", true, s.adoptInvalidArgs},
		{"adopt-expires", true, s.adoptExpires},
		{"detach-survives-close", true, s.detachSurvivesClose},
	}
}

func adopter(t *testing.T, l backends.Locker) backends.Adopter {
	t.Helper()
	a, ok := l.(backends.Adopter)
	require.True(t, ok, "conformance: the target sets LockAdopt but its Locker %T is not a backends.Adopter", l)
	return a
}

func detacher(t *testing.T, lease backends.Lease) backends.Detacher {
	t.Helper()
	d, ok := lease.(backends.Detacher)
	require.True(t, ok, "conformance: the target sets LockAdopt but its lease %T is not a backends.Detacher", lease)
	return d
}

// adopt: a detached lease leaves the lock held; another Locker adopts it
// with the same name, owner and token, refreshes and releases it.
func (s lockSuite) adopt(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "worker-a", TTL: 30 * time.Second})
	rec := detacher(t, a).Record()
	assert.Equal(t, "job", rec.Name)
	assert.Equal(t, "worker-a", rec.Owner)
	assert.Equal(t, a.Token(), rec.Token)
	assert.Equal(t, a.TTL(), rec.TTL)
	detacher(t, a).Detach()
	assert.True(t, closed(a.Done()), "a detached lease is over here")
	assert.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld)
	requireHeld(t, ls[2], "job")

	b, err := adopter(t, ls[1]).Adopt(ctx, rec, false)
	require.NoError(t, err)
	assert.Equal(t, "job", b.Name())
	assert.Equal(t, "worker-a", b.Owner())
	assert.Equal(t, a.Token(), b.Token())
	assert.Equal(t, rec.TTL, b.TTL())
	assert.False(t, closed(b.Done()))
	require.NoError(t, b.Refresh(ctx, 0))
	requireHeld(t, ls[2], "job")

	// Adopting twice is harmless: both name the one backend lease.
	again, err := adopter(t, ls[2]).Adopt(ctx, rec, false)
	require.NoError(t, err)
	require.NoError(t, b.Release(ctx))
	assert.True(t, closed(b.Done()))
	assert.ErrorIs(t, again.Release(ctx), backends.ErrNotHeld)
	c := tryAcquire(t, ls[0], "job", backends.LockOptions{})
	assert.Greater(t, c.Token(), a.Token())
	require.NoError(t, c.Release(ctx))
}

// adoptNotHeld: a record whose lease was released, handed on or never
// existed is ErrNotHeld.
func (s lockSuite) adoptNotHeld(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "worker-a"})
	rec := detacher(t, a).Record()

	wrong := rec
	wrong.Token++
	_, err := adopter(t, ls[1]).Adopt(ctx, wrong, false)
	assert.ErrorIs(t, err, backends.ErrNotHeld, "another token")
	wrong = rec
	wrong.Owner = "worker-b"
	_, err = adopter(t, ls[1]).Adopt(ctx, wrong, false)
	assert.ErrorIs(t, err, backends.ErrNotHeld, "another owner")
	wrong = rec
	wrong.Name = "other"
	_, err = adopter(t, ls[1]).Adopt(ctx, wrong, false)
	assert.ErrorIs(t, err, backends.ErrNotHeld, "another lock")

	require.NoError(t, a.Release(ctx))
	_, err = adopter(t, ls[1]).Adopt(ctx, rec, false)
	assert.ErrorIs(t, err, backends.ErrNotHeld, "released")
	b := tryAcquire(t, ls[0], "job", backends.LockOptions{Owner: "worker-a"})
	_, err = adopter(t, ls[1]).Adopt(ctx, rec, false)
	assert.ErrorIs(t, err, backends.ErrNotHeld, "the same owner holds a newer lease")
	require.NoError(t, b.Release(ctx))
}

// adoptInvalidArgs: malformed records are ErrInvalidArgument.
func (s lockSuite) adoptInvalidArgs(t *testing.T) {
	ls := s.lockers(t, 1)
	ctx := ctxFor(t, opTimeout)
	good := backends.LeaseRecord{Name: "job", Owner: "o", Token: 7, TTL: time.Second, Handle: "h|o"}
	for name, mutate := range map[string]func(*backends.LeaseRecord){
		"empty name":    func(r *backends.LeaseRecord) { r.Name = "" },
		"name with /":   func(r *backends.LeaseRecord) { r.Name = "a/b" },
		"empty handle":  func(r *backends.LeaseRecord) { r.Handle = "" },
		"handle with /": func(r *backends.LeaseRecord) { r.Handle = "../x|o" },
		"long handle":   func(r *backends.LeaseRecord) { r.Handle = string(make([]byte, backends.MaxLeaseHandleLen+1)) },
		"zero token":    func(r *backends.LeaseRecord) { r.Token = 0 },
		"no ttl":        func(r *backends.LeaseRecord) { r.TTL = 0 },
		"negative ttl":  func(r *backends.LeaseRecord) { r.TTL = -time.Second },
	} {
		rec := good
		mutate(&rec)
		_, err := adopter(t, ls[0]).Adopt(ctx, rec, false)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, name)
	}
}

// adoptExpires: an adopted lease is not extended by the adoption: left
// alone, it ends when its TTL runs out and the lock is free again.
func (s lockSuite) adoptExpires(t *testing.T) {
	ls := s.lockers(t, 2)
	ctx := ctxFor(t, opTimeout)
	const ttl = 2 * time.Second
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: ttl})
	rec := detacher(t, a).Record()
	detacher(t, a).Detach()
	b, err := adopter(t, ls[1]).Adopt(ctx, rec, false)
	require.NoError(t, err)
	select {
	case <-b.Done():
	case <-time.After(ttl + 3*time.Second):
		t.Fatalf("an adopted lease of TTL %v was still held after %v", ttl, ttl+3*time.Second)
	}
	c, err := ls[0].Acquire(ctxFor(t, ttl+3*time.Second), "job", backends.LockOptions{})
	require.NoError(t, err)
	assert.Greater(t, c.Token(), a.Token())
	require.NoError(t, c.Release(ctx))
}

// detachSurvivesClose: closing the Locker a lease was detached from does
// not release it; the adopter still holds the lock.
func (s lockSuite) detachSurvivesClose(t *testing.T) {
	ls := s.lockers(t, 3)
	ctx := ctxFor(t, opTimeout)
	a := tryAcquire(t, ls[0], "job", backends.LockOptions{TTL: 30 * time.Second})
	d := detacher(t, a)
	rec := d.Record()
	d.Detach()
	require.NoError(t, ls[0].Close())
	b, err := adopter(t, ls[1]).Adopt(ctx, rec, false)
	require.NoError(t, err, "the lock must still be held after the detaching Locker closed")
	requireHeld(t, ls[2], "job")
	require.NoError(t, b.Release(ctx))
}
