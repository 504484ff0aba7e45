package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// TestBlockingCallsKeepTheirDeadline: Acquire and Campaign through the node
// facades return at their deadline while the lock actor is busy — its
// mailbox stuck behind a Release the paused backend does not answer (up to
// op_timeout, 5s). The withdrawal of the abandoned wait goes on in the
// background, and once the backend is back nothing of it is held.
func TestBlockingCallsKeepTheirDeadline(t *testing.T) {
	const (
		deadline = 300 * time.Millisecond
		slack    = 100 * time.Millisecond // scheduling on a loaded machine, -race
	)
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			node, srv := pausedNode(t, backend, "deadline-"+backend)
			locks, election := node.Locks(), node.Election()
			busy, err := locks.Acquire(ctxFor(t, 5*time.Second), "busy", backends.LockOptions{TTL: 30 * time.Second})
			require.NoError(t, err)

			srv.Pause()
			// The release reaches the actor, which then waits on the
			// paused backend; this caller stops listening after 50ms.
			rctx, rcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			_ = busy.Release(rctx)
			rcancel()

			// Both wait behind the release, at the same time.
			var (
				wg                        sync.WaitGroup
				acquireErr, campaignErr   error
				acquireTook, campaignTook time.Duration
			)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), deadline)
				defer cancel()
				start := time.Now()
				lease, err := locks.Acquire(ctx, "wanted", backends.LockOptions{TTL: 30 * time.Second})
				acquireTook, acquireErr = time.Since(start), err
				assert.Nil(t, lease)
			})
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), deadline)
				defer cancel()
				start := time.Now()
				lead, err := election.Campaign(ctx, "wanted", "me")
				campaignTook, campaignErr = time.Since(start), err
				assert.Nil(t, lead)
			})
			wg.Wait()
			assert.ErrorIs(t, acquireErr, context.DeadlineExceeded)
			assert.ErrorIs(t, acquireErr, backends.ErrNotObtained)
			assert.ErrorIs(t, campaignErr, context.DeadlineExceeded)

			t.Logf("%s: %v deadline, actor busy: acquire returned after %v, campaign after %v",
				backend, deadline, acquireTook, campaignTook)
			assert.LessOrEqual(t, acquireTook, deadline+slack, "acquire overran its deadline")
			assert.LessOrEqual(t, campaignTook, deadline+slack, "campaign overran its deadline")

			srv.Resume()
			// Nothing of the abandoned waits is held: the lock can be
			// taken and the election has no leader.
			require.Eventually(t, func() bool {
				l, err := locks.TryAcquire(ctxFor(t, time.Second), "wanted", backends.LockOptions{})
				if err != nil {
					return false
				}
				return l.Release(ctxFor(t, time.Second)) == nil
			}, 30*time.Second, 50*time.Millisecond, "the abandoned acquire left the lock held")
			_, err = election.Leader(ctxFor(t, 5*time.Second), "wanted")
			require.ErrorIs(t, err, backends.ErrNotFound, "the abandoned campaign left a leader")
		})
	}
}
