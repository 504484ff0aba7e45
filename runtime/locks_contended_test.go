package runtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// TestLockContendedDeadlines: 16 callers loop acquire → release on one lock
// through the facade until a shared deadline ends their waits, round after
// round. Waits that end while the lock is being handed to them must leave
// nothing behind: after every round the lock is free again within a
// bound, and every round hands the lock on.
func TestLockContendedDeadlines(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			cfg := runtime.Spec{Env: "test", NodeID: "contended-" + backend}
			if backend == backends.BackendRedis {
				cfg.Redis = redisConfig(harness.StartRedis(t))
			} else {
				cfg.Etcd = etcdConfig(harness.StartEtcd(t))
			}
			node := startNode(t, cfg)
			locks := node.Locks()
			for round := range 4 {
				var grants atomic.Int64
				ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						for ctx.Err() == nil {
							l, err := locks.Acquire(ctx, "contended", backends.LockOptions{TTL: 30 * time.Second})
							if err != nil {
								if !errors.Is(err, context.DeadlineExceeded) {
									t.Errorf("round %d: acquire: %v", round, err)
								}
								return
							}
							grants.Add(1)
							rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
							if err := l.Release(rctx); err != nil {
								t.Errorf("round %d: release: %v", round, err)
							}
							rcancel()
						}
					})
				}
				wg.Wait()
				cancel()
				require.Positive(t, grants.Load(), "round %d granted nothing", round)
				// An Acquire returns at its deadline and withdraws its wait in
				// the background, giving back a grant that raced it: the lock
				// is free again soon after, not necessarily at once.
				var l backends.Lease
				require.Eventually(t, func() bool {
					var err error
					l, err = locks.TryAcquire(ctxFor(t, 5*time.Second), "contended", backends.LockOptions{})
					return err == nil
				}, 5*time.Second, 10*time.Millisecond, "round %d left the lock held", round)
				require.NoError(t, l.Release(ctxFor(t, 5*time.Second)))
			}
		})
	}
}
