package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// TestLockDeadlineLeavesNoHolder: callers whose deadlines end in the middle
// of an acquire (the read can time out just before the context reports it)
// must not leave the lock held by nobody until its TTL. After every caller
// has given up or released, the lock is free as soon as the give-backs of
// lost replies (run in the background, so the callers keep their deadline)
// have run: well within a second, against a TTL of 15s.
func TestLockDeadlineLeavesNoHolder(t *testing.T) {
	_, conn := kitRedis(t)
	ns := kitNS(t, "replylost")
	l := kitLocker(t, conn, ns)
	for round := range 8 {
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for ctx.Err() == nil {
					lease, err := l.Acquire(ctx, "contended", backends.LockOptions{TTL: 15 * time.Second})
					if err != nil {
						continue
					}
					_ = lease.Release(context.Background())
				}
			})
		}
		wg.Wait()
		cancel()
		got := make(chan backends.Lease, 1)
		require.Eventually(t, func() bool {
			lease, err := l.TryAcquire(t.Context(), "contended", backends.LockOptions{TTL: 15 * time.Second})
			if err != nil {
				return false
			}
			got <- lease
			return true
		}, 2*time.Second, 5*time.Millisecond, "round %d: the lock was left held after every caller gave up", round)
		require.NoError(t, (<-got).Release(t.Context()))
	}
}
