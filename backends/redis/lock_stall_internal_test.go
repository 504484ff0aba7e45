package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// stallTTL is the TTL of what the stall tests acquire: long against the
// stall, so "given back" and "expired" cannot be confused.
const stallTTL = 10 * time.Second

// stallFor pauses the server for d (longer than one give-back attempt may
// take, lockCleanupTimeout), then resumes it and returns when.
func stallFor(t *testing.T, pause, resume func(), d time.Duration, during func()) time.Time {
	t.Helper()
	pause()
	stalled := time.Now()
	during()
	if rest := d - time.Since(stalled); rest > 0 {
		<-time.After(rest) // the stall itself: a fault's length, not a wait for a condition
	}
	resume()
	return time.Now()
}

// TestGiveBackOutlastsAStall: an Acquire (and a Campaign) whose reply is
// lost while redis-server is stopped (SIGSTOP) returns at its deadline; its
// script still runs after SIGCONT and takes the lock — after the single 2s
// give-back of before had long given up. The give-back now keeps trying
// until that grant would be over, so another contender gets the lock and
// the leadership well before their TTL.
func TestGiveBackOutlastsAStall(t *testing.T) {
	srv, conn := kitRedis(t)
	connE, other := kitConnect(t, Config{URL: srv.URL()}), kitConnect(t, Config{URL: srv.URL()})
	ns := kitNS(t, "stall")
	l, lo := kitLocker(t, conn, ns), kitLocker(t, other, ns)
	e, eo := kitElector(t, connE, ns, stallTTL), kitElector(t, other, ns, stallTTL)
	t.Cleanup(srv.Resume) // before the components close

	// Warm up: the Pub/Sub subscriptions exist, so the stalled calls get as
	// far as sending their scripts.
	lease, err := l.Acquire(t.Context(), "warm", backends.LockOptions{})
	require.NoError(t, err)
	require.NoError(t, lease.Release(t.Context()))
	lead, err := e.Campaign(t.Context(), "warm", "x")
	require.NoError(t, err)
	require.NoError(t, lead.Resign(t.Context()))
	// Each of l and e now has one idle pooled connection, on which its
	// stalled call writes its script at once. Anything sent later needs a
	// new connection, whose handshake the stalled server does not answer:
	// a give-back that gives up within the stall never reaches the server.

	const deadline = 200 * time.Millisecond
	var acquireTook, campaignTook time.Duration
	resumed := stallFor(t, srv.Pause, srv.Resume, lockCleanupTimeout+time.Second, func() {
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		start := time.Now()
		_, err := l.Acquire(ctx, "stall", backends.LockOptions{TTL: stallTTL})
		acquireTook = time.Since(start)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		ctx, cancel = context.WithTimeout(t.Context(), deadline)
		start = time.Now()
		_, err = e.Campaign(ctx, "stall", "a")
		campaignTook = time.Since(start)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})

	// Once the server answers a PING after SIGCONT it has read what was
	// queued on every connection during the stall: the stalled scripts have
	// run (taking the lock and the leadership), or never will.
	require.NoError(t, other.HealthCheck(t.Context()))
	// Both are polled at once, so each time is its own.
	freed := func(name string, took *time.Duration, try func(ctx context.Context) error) {
		*took = stallTTL
		if assert.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			return try(ctx) == nil
		}, stallTTL, 20*time.Millisecond, "%s stayed held after the stall", name) {
			*took = time.Since(resumed)
		}
	}
	var lockAfter, leadAfter time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		freed("lock", &lockAfter, func(ctx context.Context) error {
			ls, err := lo.TryAcquire(ctx, "stall", backends.LockOptions{TTL: stallTTL})
			if err == nil {
				err = ls.Release(ctx)
			}
			return err
		})
	})
	wg.Go(func() {
		freed("leadership", &leadAfter, func(ctx context.Context) error {
			ld, err := eo.Campaign(ctx, "stall", "b")
			if err == nil {
				err = ld.Resign(ctx)
			}
			return err
		})
	})
	wg.Wait()
	t.Logf("stalled %v: acquire returned after %v, campaign after %v; after SIGCONT the lock was free in %v, the election in %v (ttl %v)",
		lockCleanupTimeout+time.Second, acquireTook.Round(time.Millisecond), campaignTook.Round(time.Millisecond),
		lockAfter.Round(time.Millisecond), leadAfter.Round(time.Millisecond), stallTTL)
	assert.Less(t, lockAfter, stallTTL/2, "the stalled acquire's grant was not given back")
	assert.Less(t, leadAfter, stallTTL/2, "the stalled campaign's leadership was not given back")
	assert.Less(t, acquireTook, deadline+500*time.Millisecond, "acquire overran its deadline")
	assert.Less(t, campaignTook, deadline+500*time.Millisecond, "campaign overran its deadline")
}
