package etcd

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newTestLocker(t *testing.T, conn *Connector, ns backends.Namespace) *lockStore {
	t.Helper()
	l, err := newLockStore(conn, backends.LockerOptions{Namespace: ns})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

type acquired struct {
	lease backends.Lease
	err   error
	at    time.Time
}

func goAcquire(ctx context.Context, l *lockStore, name string, opts backends.LockOptions) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		lease, err := l.Acquire(ctx, name, opts)
		ch <- acquired{lease, err, time.Now()}
	}()
	return ch
}

// queueLen is the number of contenders (holder included) of a lock.
func queueLen(t *testing.T, raw *clientv3.Client, l *lockStore, name string) int {
	return len(rawKeys(t, raw, l.ns.Prefix(backends.ComponentLock, name)))
}

func TestLockWakeLatency(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	a := newTestLocker(t, testConn(t, srv), ns)
	b := newTestLocker(t, testConn(t, srv), ns)
	ctx := t.Context()

	var lat []time.Duration
	for i := range 15 {
		name := fmt.Sprintf("wake-%d", i)
		held, err := a.Acquire(ctx, name, backends.LockOptions{TTL: 10 * time.Second})
		require.NoError(t, err)
		ch := goAcquire(ctx, b, name, backends.LockOptions{TTL: 10 * time.Second})
		require.Eventually(t, func() bool { return queueLen(t, raw, a, name) == 2 }, 5*time.Second, 2*time.Millisecond)
		// The waiter is queued; give it time to set up its watch while
		// checking that it really waits.
		require.Never(t, func() bool { return len(ch) > 0 }, 100*time.Millisecond, 5*time.Millisecond)
		released := time.Now()
		require.NoError(t, held.Release(ctx))
		var got acquired
		select {
		case got = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken")
		}
		require.NoError(t, got.err)
		lat = append(lat, got.at.Sub(released))
		assert.Greater(t, got.lease.Token(), uint64(0))
		require.NoError(t, got.lease.Release(ctx))
	}
	slices.Sort(lat)
	t.Logf("release → waiter acquired (15 runs): min %v, median %v, max %v", lat[0], lat[len(lat)/2], lat[len(lat)-1])
	assert.Less(t, lat[len(lat)/2], 200*time.Millisecond, "hand-over is push-based, not polled")
}

func TestLockFIFO(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	conn := testConn(t, srv)
	holderLocker := newTestLocker(t, conn, ns)
	ctx := t.Context()
	const name, n = "fifo", 10

	holder, err := holderLocker.Acquire(ctx, name, backends.LockOptions{})
	require.NoError(t, err)
	var (
		mu     sync.Mutex
		order  []int
		tokens []uint64
		wg     sync.WaitGroup
	)
	for i := range n {
		l := newTestLocker(t, testConn(t, srv), ns) // one "process" per waiter
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := l.Acquire(ctx, name, backends.LockOptions{Owner: fmt.Sprint(i)})
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			order = append(order, i)
			tokens = append(tokens, lease.Token())
			mu.Unlock()
			assert.NoError(t, lease.Release(ctx))
		}()
		// Enqueue strictly one after the other.
		require.Eventually(t, func() bool { return queueLen(t, raw, holderLocker, name) == i+2 },
			5*time.Second, 2*time.Millisecond)
	}
	require.NoError(t, holder.Release(ctx))
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, order)
	assert.True(t, slices.IsSorted(tokens), "tokens %v", tokens)
	assert.Greater(t, tokens[0], holder.Token())
	assert.Equal(t, 0, queueLen(t, raw, holderLocker, name))
}

func TestLockCancelAndTryLeaveNothing(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	a := newTestLocker(t, testConn(t, srv), ns)
	b := newTestLocker(t, testConn(t, srv), ns)
	ctx := t.Context()
	held, err := a.Acquire(ctx, "x", backends.LockOptions{})
	require.NoError(t, err)

	// TryAcquire: not obtained, its key and lease are gone.
	before, err := raw.Leases(ctx)
	require.NoError(t, err)
	_, err = b.TryAcquire(ctx, "x", backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotObtained)
	assert.Equal(t, 1, queueLen(t, raw, a, "x"))
	after, err := raw.Leases(ctx)
	require.NoError(t, err)
	assert.Len(t, after.Leases, len(before.Leases))

	// Acquire cancelled while waiting: prompt, wrapped ctx error, no entry.
	wctx, cancel := context.WithCancel(ctx)
	ch := goAcquire(wctx, b, "x", backends.LockOptions{})
	require.Eventually(t, func() bool { return queueLen(t, raw, a, "x") == 2 }, 5*time.Second, 2*time.Millisecond)
	waiter := rawKeys(t, raw, a.ns.Prefix(backends.ComponentLock, "x"))[1]
	cancel()
	start := time.Now()
	got := <-ch
	t.Logf("cancelled acquire returned after %v: %v", time.Since(start), got.err)
	require.ErrorIs(t, got.err, context.Canceled)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, 1, queueLen(t, raw, a, "x"))
	assert.Equal(t, int64(-1), leaseTTL(t, raw, waiter.Lease), "waiter's lease revoked")

	// A deadline works the same way.
	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer dcancel()
	_, err = b.Acquire(dctx, "x", backends.LockOptions{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, queueLen(t, raw, a, "x"))
	require.NoError(t, held.Release(ctx))
}

func TestLockRefreshWithOtherTTL(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	conn := testConn(t, srv)
	l := newTestLocker(t, conn, testNS())
	ctx := t.Context()
	pfx := l.ns.Prefix(backends.ComponentLock, "r")

	for _, autoRenew := range []bool{false, true} {
		t.Run(fmt.Sprintf("autorenew=%v", autoRenew), func(t *testing.T) {
			lease, err := l.Acquire(ctx, "r", backends.LockOptions{TTL: 1500 * time.Millisecond, AutoRenew: autoRenew})
			require.NoError(t, err)
			assert.Equal(t, 2*time.Second, lease.TTL(), "rounded up to whole seconds, minimum 2s")
			kv := rawKeys(t, raw, pfx)[0]
			old := kv.Lease

			require.NoError(t, lease.Refresh(ctx, 5*time.Second))
			assert.Equal(t, 5*time.Second, lease.TTL())
			kv2 := rawKeys(t, raw, pfx)[0]
			assert.Equal(t, kv.Key, kv2.Key)
			assert.Equal(t, lease.Token(), uint64(kv2.Rev), "token unchanged")
			assert.NotEqual(t, old, kv2.Lease, "moved to a new lease")
			assert.Equal(t, int64(-1), leaseTTL(t, raw, old), "old lease revoked")
			assert.InDelta(t, 5, leaseTTL(t, raw, kv2.Lease), 1)

			// It outlives the original 2s.
			require.Never(t, func() bool { return isClosed(lease.Done()) }, 3*time.Second, 50*time.Millisecond)
			require.NoError(t, lease.Refresh(ctx, 0), "0 keeps the current ttl")
			assert.Equal(t, 5*time.Second, lease.TTL())
			assert.Equal(t, kv2.Lease, rawKeys(t, raw, pfx)[0].Lease)

			require.NoError(t, lease.Release(ctx))
			require.True(t, isClosed(lease.Done()))
			require.ErrorIs(t, lease.Release(ctx), backends.ErrNotHeld)
			require.ErrorIs(t, lease.Refresh(ctx, 0), backends.ErrNotHeld)
			assert.Empty(t, rawKeys(t, raw, pfx))
		})
	}
}

func TestLockLoss(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	ctx := t.Context()

	t.Run("key deleted by someone else", func(t *testing.T) {
		l := newTestLocker(t, testConn(t, srv), ns)
		lease, err := l.Acquire(ctx, "del", backends.LockOptions{})
		require.NoError(t, err)
		_, err = raw.Delete(ctx, l.ns.Prefix(backends.ComponentLock, "del"), clientv3.WithPrefix())
		require.NoError(t, err)
		require.Eventually(t, func() bool { return isClosed(lease.Done()) }, 2*time.Second, 5*time.Millisecond)
		require.ErrorIs(t, lease.Refresh(ctx, 0), backends.ErrNotHeld)
		require.ErrorIs(t, lease.Release(ctx), backends.ErrNotHeld)
	})

	t.Run("connector disconnected", func(t *testing.T) {
		conn := testConn(t, srv)
		l := newTestLocker(t, conn, ns)
		other := newTestLocker(t, testConn(t, srv), ns)
		lease, err := l.Acquire(ctx, "crash", backends.LockOptions{TTL: 2 * time.Second, AutoRenew: true})
		require.NoError(t, err)
		require.NoError(t, conn.Disconnect(ctx))
		require.Eventually(t, func() bool { return isClosed(lease.Done()) }, time.Second, 5*time.Millisecond)
		err = lease.Release(ctx)
		require.Error(t, err)
		start := time.Now()
		next, err := other.Acquire(ctx, "crash", backends.LockOptions{})
		require.NoError(t, err)
		t.Logf("lock of a crashed holder (ttl 2s) taken over after %v", time.Since(start))
		assert.Greater(t, next.Token(), lease.Token())
		assert.Less(t, time.Since(start), 4*time.Second)
		require.NoError(t, l.Close())
	})

	t.Run("close releases and aborts waiters", func(t *testing.T) {
		l := newTestLocker(t, testConn(t, srv), ns)
		w := newTestLocker(t, testConn(t, srv), ns)
		lease, err := l.Acquire(ctx, "close", backends.LockOptions{AutoRenew: true})
		require.NoError(t, err)
		other, err := w.Acquire(ctx, "close2", backends.LockOptions{})
		require.NoError(t, err)
		ch := goAcquire(ctx, l, "close2", backends.LockOptions{})
		require.Eventually(t, func() bool { return queueLen(t, raw, l, "close2") == 2 }, 5*time.Second, 2*time.Millisecond)
		require.NoError(t, l.Close())
		got := <-ch
		require.ErrorIs(t, got.err, backends.ErrClosed)
		assert.True(t, isClosed(lease.Done()))
		assert.Equal(t, 0, queueLen(t, raw, l, "close"))
		assert.Equal(t, 1, queueLen(t, raw, l, "close2"))
		require.ErrorIs(t, l.Close(), backends.ErrClosed)
		_, err = l.TryAcquire(ctx, "close", backends.LockOptions{})
		require.ErrorIs(t, err, backends.ErrClosed)
		require.NoError(t, other.Release(ctx))
	})

	t.Run("server killed and back within the ttl", func(t *testing.T) {
		l := newTestLocker(t, testConn(t, srv), ns)
		lease, err := l.Acquire(ctx, "kill", backends.LockOptions{TTL: 10 * time.Second, AutoRenew: true})
		require.NoError(t, err)
		conn := l.conn
		srv.Stop()
		// Once the connector has seen the server go, calls fail at once.
		require.Eventually(t, func() bool { return conn.HealthCheck(ctx) != nil }, 5*time.Second, 5*time.Millisecond)
		start := time.Now()
		_, err = l.TryAcquire(ctx, "other", backends.LockOptions{})
		require.ErrorIs(t, err, backends.ErrUnavailable)
		t.Logf("try acquire with the server down: %v after %v", err, time.Since(start))
		assert.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, lease.Refresh(ctx, 0), backends.ErrUnavailable)
		srv.Start()
		start = time.Now()
		require.Eventually(t, func() bool { return lease.Refresh(ctx, 0) == nil }, 10*time.Second, 20*time.Millisecond)
		t.Logf("refresh works again %v after the server was back", time.Since(start))
		assert.False(t, isClosed(lease.Done()), "the lease survived the outage")
		require.NoError(t, lease.Release(ctx))
	})
}
