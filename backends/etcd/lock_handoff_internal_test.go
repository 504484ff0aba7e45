package etcd

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLockHandoffOneWrite: a hand-off to an owner with the same TTL is one
// etcd write (the store revision moves by exactly one), keeps the etcd
// lease, and its key is the only one under the lock.
func TestLockHandoffOneWrite(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	l := newTestLocker(t, testConn(t, srv), testNS())
	ctx := t.Context()

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{TTL: 10 * time.Second})
	require.NoError(t, err)
	before, err := raw.Get(ctx, "probe")
	require.NoError(t, err)
	b, err := a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{TTL: 10 * time.Second, Owner: "next"})
	require.NoError(t, err)
	after, err := raw.Get(ctx, "probe")
	require.NoError(t, err)
	assert.Equal(t, before.Header.Revision+1, after.Header.Revision, "a hand-off must be one write")
	assert.Equal(t, uint64(after.Header.Revision), b.Token(), "the token is the new key's create revision")

	keys := rawKeys(t, raw, l.ns.Prefix(backends.ComponentLock, "job"))
	require.Len(t, keys, 1)
	assert.Equal(t, a.(*lockLease).h.lease(), keys[0].Lease, "same TTL: the etcd lease is kept")
	assert.Equal(t, int64(b.Token()), keys[0].Rev)
	require.NoError(t, b.Release(ctx))
	assert.Equal(t, int64(-1), leaseTTL(t, raw, keys[0].Lease), "release revokes the shared lease")
}

// TestLockHandoffQueuedContender: a contender queued in etcd itself (another
// process's Acquire) is never overtaken: the hand-off is refused with
// ErrNotObtained, the lease stays held, and its release serves that
// contender.
func TestLockHandoffQueuedContender(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	a := newTestLocker(t, testConn(t, srv), ns)
	b := newTestLocker(t, testConn(t, srv), ns)
	ctx := t.Context()

	held, err := a.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	ch := goAcquire(ctx, b, "job", backends.LockOptions{})
	require.Eventually(t, func() bool { return queueLen(t, raw, a, "job") == 2 }, 5*time.Second, 2*time.Millisecond)

	_, err = held.(backends.Handoffer).Handoff(ctx, backends.LockOptions{Owner: "local-waiter"})
	require.ErrorIs(t, err, backends.ErrNotObtained)
	assert.False(t, isClosed(held.Done()), "a refused hand-off leaves the lease held")
	assert.Equal(t, 2, queueLen(t, raw, a, "job"), "a refused hand-off leaves nothing behind")
	require.NoError(t, held.Refresh(ctx, 0))

	require.NoError(t, held.Release(ctx))
	var got acquired
	select {
	case got = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("queued contender not served")
	}
	require.NoError(t, got.err)
	assert.Greater(t, got.lease.Token(), held.Token())
	require.NoError(t, got.lease.Release(ctx))
}

// TestLockHandoffNewTTL: an owner asking for another TTL gets a fresh etcd
// lease, and the old one is revoked.
func TestLockHandoffNewTTL(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	l := newTestLocker(t, testConn(t, srv), testNS())
	ctx := t.Context()

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{TTL: 10 * time.Second})
	require.NoError(t, err)
	old := a.(*lockLease).h.lease()
	b, err := a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{TTL: 20 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, 20*time.Second, b.TTL())
	keys := rawKeys(t, raw, l.ns.Prefix(backends.ComponentLock, "job"))
	require.Len(t, keys, 1)
	assert.NotEqual(t, old, keys[0].Lease)
	assert.Equal(t, int64(-1), leaseTTL(t, raw, old), "the old lease is revoked")
	assert.Greater(t, leaseTTL(t, raw, keys[0].Lease), int64(10))
	require.NoError(t, b.Release(ctx))
}

// TestLockHandoffChecksKeyOnServer: a lease whose key was replaced behind
// its back (its monitor stopped, so it still believes it holds the lock) is
// refused by the transaction's guard itself: ErrNotHeld, and the other
// key untouched.
func TestLockHandoffChecksKeyOnServer(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	l := newTestLocker(t, testConn(t, srv), testNS())
	ctx := t.Context()

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	h := a.(*lockLease).h
	h.stopMonitor()
	_, err = raw.Delete(ctx, h.key)
	require.NoError(t, err)
	// Same key, same lease, new create revision: only the guard on the
	// create revision tells it apart.
	_, err = raw.Put(ctx, h.key, "someone-else", clientv3.WithLease(h.lease()))
	require.NoError(t, err)
	require.True(t, h.isHeld(), "the test needs a lease that has not noticed")

	_, err = a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotHeld)
	keys := rawKeys(t, raw, l.ns.Prefix(backends.ComponentLock, "job"))
	require.Len(t, keys, 1)
	assert.Equal(t, h.key, keys[0].Key)
	assert.NotEqual(t, h.rev, keys[0].Rev)
	assert.True(t, isClosed(a.Done()))
}
