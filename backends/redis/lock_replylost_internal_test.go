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
// has given up or released, the lock is free at once.
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
		lease, err := l.TryAcquire(t.Context(), "contended", backends.LockOptions{TTL: 15 * time.Second})
		require.NoError(t, err, "round %d: the lock was left held after every caller gave up", round)
		require.NoError(t, lease.Release(t.Context()))
	}
}
