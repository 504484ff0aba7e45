package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// TestElectionFreeSoonAfterEtcdRestart: etcd is SIGKILLed under a node
// that leads an election and holds a lock; the node treats both as lost.
// After etcd restarts (renewing every lease to its full TTL), another
// node wins the election and takes the lock well before that TTL, because
// the first node revokes what it gave up once etcd answers again.
func TestElectionFreeSoonAfterEtcdRestart(t *testing.T) {
	const ttl = 6 * time.Second
	srv := harness.StartEtcdProcess(t)
	cfg := func(id string) runtime.Spec {
		c := runtime.Spec{Env: "test", NodeID: id, Etcd: etcdConfig(srv)}
		c.Components.ElectionTTL = ttl
		// Reconnect quickly, so what is measured is the lock, not the
		// connector's backoff (up to 10s by default).
		c.Connector.HealthInterval = 200 * time.Millisecond
		c.Connector.BackoffMax = 500 * time.Millisecond
		return c
	}
	a, b := startNode(t, cfg("kill9-a")), startNode(t, cfg("kill9-b"))

	lead, err := a.Election().Campaign(ctxFor(t, 5*time.Second), "kill9", "a")
	require.NoError(t, err)
	lease, err := a.Locks().Acquire(ctxFor(t, 5*time.Second), "kill9", backends.LockOptions{TTL: ttl, AutoRenew: true})
	require.NoError(t, err)

	srv.Stop() // SIGKILL
	require.Eventually(t, func() bool {
		select {
		case <-lead.Done():
		default:
			return false
		}
		select {
		case <-lease.Done():
			return true
		default:
			return false
		}
	}, 4*ttl, 20*time.Millisecond, "node a never treated its leadership and lock as lost")

	srv.Start()
	restarted := time.Now()
	var (
		mu                       sync.Mutex // the conditions run in goroutines of their own
		campaignAfter, lockAfter time.Duration
	)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		l, err := b.Election().Campaign(ctx, "kill9", "b")
		if err != nil {
			return false
		}
		mu.Lock()
		campaignAfter = time.Since(restarted)
		mu.Unlock()
		return l.Resign(ctx) == nil
	}, 4*ttl, 20*time.Millisecond, "node b never won the election")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		l, err := b.Locks().TryAcquire(ctx, "kill9", backends.LockOptions{TTL: ttl})
		if err != nil {
			return false
		}
		mu.Lock()
		lockAfter = time.Since(restarted)
		mu.Unlock()
		return l.Release(ctx) == nil
	}, 4*ttl, 20*time.Millisecond, "node b never got the lock")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("after the etcd restart (ttl %v): node b led after %v, held the lock after %v",
		ttl, campaignAfter.Round(time.Millisecond), lockAfter.Round(time.Millisecond))
	assert.Less(t, campaignAfter, ttl/2, "the lost leadership was not revoked")
	assert.Less(t, lockAfter, ttl/2, "the lost lock was not revoked")
}
