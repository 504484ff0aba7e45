package etcd

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

// TestLostHoldsRevokedAfterRestart: etcd is SIGKILLed under a leader and a
// lock holder (both renewing). Their keep-alives go unanswered for a TTL,
// so both holds end as lost — but the keys stay on the server, and a
// restarted etcd renews every lease to its full TTL. The holder's side
// revokes what it gave up once the server is back, so other contenders get
// the election and the lock well before that TTL instead of after it.
func TestLostHoldsRevokedAfterRestart(t *testing.T) {
	const ttl = 6 * time.Second
	srv := harness.StartEtcdProcess(t)
	ns := testNS()
	connA, connB := testConn(t, srv), testConn(t, srv)
	elector := func(conn *Connector) *electionStore {
		e, err := newElectionStore(conn, backends.ElectorOptions{Namespace: ns, TTL: ttl})
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	electA, electB := elector(connA), elector(connB)
	lockA, lockB := newTestLocker(t, connA, ns), newTestLocker(t, connB, ns)

	ctx := t.Context()
	lead, err := electA.Campaign(ctx, "kill9", "a")
	require.NoError(t, err)
	lease, err := lockA.Acquire(ctx, "kill9", backends.LockOptions{TTL: ttl, AutoRenew: true})
	require.NoError(t, err)

	srv.Stop() // SIGKILL
	killed := time.Now()
	require.Eventually(t, func() bool { return isClosed(lead.Done()) && isClosed(lease.Done()) },
		3*ttl, 20*time.Millisecond, "the holds never ended while etcd was down")
	t.Logf("holds ended as lost %v after the kill", time.Since(killed).Round(time.Millisecond))

	srv.Start()
	restarted := time.Now()
	// Right after the restart B's client may still be reconnecting (calls
	// then fail fast as unavailable): try again, as a caller would.
	retry := func(what string, f func(ctx context.Context) error) time.Duration {
		t.Helper()
		var (
			mu   sync.Mutex // the condition runs in a goroutine of its own
			took time.Duration
			last error
		)
		ok := assert.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 3*ttl)
			defer cancel()
			err := f(ctx)
			mu.Lock()
			defer mu.Unlock()
			if last = err; err != nil {
				return false
			}
			took = time.Since(restarted)
			return true
		}, 3*ttl, 20*time.Millisecond, "%s after the restart", what)
		mu.Lock()
		defer mu.Unlock()
		require.True(t, ok, "%s: last error: %v", what, last)
		return took
	}
	var leadB backends.Leadership
	campaignAfter := retry("campaign", func(ctx context.Context) (err error) {
		leadB, err = electB.Campaign(ctx, "kill9", "b")
		return err
	})
	var leaseB backends.Lease
	acquireAfter := retry("acquire", func(ctx context.Context) (err error) {
		leaseB, err = lockB.Acquire(ctx, "kill9", backends.LockOptions{TTL: ttl})
		return err
	})
	t.Logf("after the restart (ttl %v): campaign won in %v, lock taken in %v", ttl,
		campaignAfter.Round(time.Millisecond), acquireAfter.Round(time.Millisecond))
	assert.Less(t, campaignAfter, ttl/2, "the lost leadership was not revoked")
	assert.Less(t, acquireAfter, ttl/2, "the lost lock was not revoked")
	assert.Greater(t, leadB.Epoch(), lead.Epoch())
	assert.Greater(t, leaseB.Token(), lease.Token())
	require.NoError(t, leadB.Resign(ctx))
	require.NoError(t, leaseB.Release(ctx))
}
