package redis

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func kitLocker(t testing.TB, c *Connector, ns backends.Namespace) *lockStore {
	t.Helper()
	l, err := newLockStore(c, backends.LockerOptions{Namespace: ns})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// kitWaiting reports how many Acquire calls of l wait on lock name.
func kitWaiting(l *lockStore, name string) int {
	_, _, ch := l.lockKeys(name)
	l.hub.mu.Lock()
	defer l.hub.mu.Unlock()
	return len(l.hub.waiters[ch])
}

func TestLockBasics(t *testing.T) {
	_, c := kitRedis(t)
	ctx := t.Context()
	l := kitLocker(t, c, kitNS(t, "dev"))

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{TTL: time.Minute, Owner: "node-a"})
	require.NoError(t, err)
	assert.Equal(t, "job", a.Name())
	assert.Equal(t, "node-a", a.Owner())
	assert.Equal(t, time.Minute, a.TTL())
	assert.NotZero(t, a.Token())

	_, err = l.TryAcquire(ctx, "job", backends.LockOptions{Owner: "node-b"})
	require.ErrorIs(t, err, backends.ErrNotObtained)
	// Same owner string is still a different acquisition.
	_, err = l.TryAcquire(ctx, "job", backends.LockOptions{Owner: "node-a"})
	require.ErrorIs(t, err, backends.ErrNotObtained)

	require.NoError(t, a.Refresh(ctx, 2*time.Minute))
	assert.Equal(t, 2*time.Minute, a.TTL())
	require.NoError(t, a.Release(ctx))
	assertClosed(t, a.Done())
	require.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld)
	require.ErrorIs(t, a.Refresh(ctx, 0), backends.ErrNotHeld)

	b, err := l.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	assert.Greater(t, b.Token(), a.Token())
	assert.NotEmpty(t, b.Owner(), "generated owner")
	assert.Equal(t, backends.DefaultLockTTL, b.TTL())
	require.NoError(t, b.Release(ctx))

	// Bad input.
	_, err = l.TryAcquire(ctx, "", backends.LockOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = l.Acquire(ctx, "a/b", backends.LockOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = l.TryAcquire(ctx, "x", backends.LockOptions{TTL: -1})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newLockStore(c, backends.LockerOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// kitScriptCounter counts completed script calls (EVAL/EVALSHA) of a
// client, to observe where a waiter is without sleeping.
type kitScriptCounter struct{ atomic.Int64 }

func (*kitScriptCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (*kitScriptCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (h *kitScriptCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			h.Add(1)
		}
		return err
	}
}

func assertClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("channel not closed")
	}
}

func TestLockExpiry(t *testing.T) {
	_, c := kitRedis(t)
	ctx := t.Context()
	l := kitLocker(t, c, kitNS(t, "dev"))

	a, err := l.TryAcquire(ctx, "e", backends.LockOptions{TTL: 200 * time.Millisecond})
	require.NoError(t, err)
	// Done closes when the TTL passes without a refresh.
	select {
	case <-a.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done did not close at expiry")
	}
	require.ErrorIs(t, a.Refresh(ctx, 0), backends.ErrNotHeld)

	// An expiry publishes nothing: a waiter must notice it through the
	// fallback, shortly after the TTL. (Done closes a little before the
	// server expires the key, so the next TryAcquire may need a moment.)
	require.Eventually(t, func() bool {
		_, err = l.TryAcquire(ctx, "e", backends.LockOptions{TTL: 300 * time.Millisecond})
		return err == nil
	}, time.Second, time.Millisecond)
	start := time.Now()
	b, err := l.Acquire(ctx, "e", backends.LockOptions{TTL: time.Minute})
	require.NoError(t, err)
	took := time.Since(start)
	t.Logf("waiter got an expired (never released) lock after %v (ttl 300ms)", took)
	assert.Less(t, took, 600*time.Millisecond)
	require.NoError(t, b.Release(ctx))
}

// TestLockWakeUpLatency measures the time from Release returning to the
// blocked Acquire (on another connector) returning.
func TestLockWakeUpLatency(t *testing.T) {
	r, c1 := kitRedis(t)
	c2 := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	holder, waiter := kitLocker(t, c1, ns), kitLocker(t, c2, ns)
	ctx := t.Context()
	scripts := &kitScriptCounter{}
	c2.Client().AddHook(scripts)

	const rounds = 20
	var lat []time.Duration
	for range rounds {
		a, err := holder.TryAcquire(ctx, "hot", backends.LockOptions{TTL: time.Minute})
		require.NoError(t, err)
		type result struct {
			at    time.Time
			lease backends.Lease
			err   error
		}
		got := make(chan result, 1)
		go func() {
			b, err := waiter.Acquire(ctx, "hot", backends.LockOptions{TTL: time.Minute})
			got <- result{time.Now(), b, err}
		}()
		// Release only after the waiter's first (failed) try, so it is the
		// notification that wakes it.
		before := scripts.Load()
		require.Eventually(t, func() bool { return scripts.Load() > before && kitWaiting(waiter, "hot") == 1 },
			2*time.Second, 100*time.Microsecond)
		released := time.Now() // the waiter may win before Release returns
		require.NoError(t, a.Release(ctx))
		select {
		case res := <-got:
			require.NoError(t, res.err)
			lat = append(lat, res.at.Sub(released))
			require.NoError(t, res.lease.Release(ctx))
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken")
		}
		require.Eventually(t, func() bool { return kitWaiting(waiter, "hot") == 0 }, time.Second, time.Millisecond)
	}
	slices.Sort(lat)
	t.Logf("lock wake-up latency over %d rounds: min %v, median %v, max %v", rounds, lat[0], lat[len(lat)/2], lat[len(lat)-1])
	assert.Less(t, lat[len(lat)/2], 50*time.Millisecond, "median wake-up")
	assert.Less(t, lat[len(lat)-1], 50*time.Millisecond, "every wake-up")
}

func TestLockAcquireContextCancel(t *testing.T) {
	_, c := kitRedis(t)
	ns := kitNS(t, "dev")
	l := kitLocker(t, c, ns)
	ctx := t.Context()
	a, err := l.TryAcquire(ctx, "busy", backends.LockOptions{TTL: time.Minute})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		want error
		mk   func() (context.Context, context.CancelFunc)
	}{
		{"cancel", context.Canceled, func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }},
		{"deadline", context.DeadlineExceeded, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 150*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wctx, cancel := tc.mk()
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := l.Acquire(wctx, "busy", backends.LockOptions{TTL: time.Minute})
				errc <- err
			}()
			require.Eventually(t, func() bool { return kitWaiting(l, "busy") == 1 }, 2*time.Second, time.Millisecond)
			if tc.want == context.Canceled {
				cancel()
			} else {
				<-wctx.Done()
			}
			canceled := time.Now()
			select {
			case err := <-errc:
				t.Logf("Acquire returned %v after cancel", time.Since(canceled))
				assert.ErrorIs(t, err, tc.want)
				assert.Less(t, time.Since(canceled), 100*time.Millisecond)
			case <-time.After(2 * time.Second):
				t.Fatal("Acquire ignored ctx")
			}
			assert.Equal(t, 0, kitWaiting(l, "busy"), "no stale waiter")
		})
	}
	// The holder is untouched and still the only holder.
	require.NoError(t, a.Refresh(ctx, 0))
	owner, _, _ := l.lockKeys("busy")
	assert.EqualValues(t, 1, c.Client().Exists(ctx, owner).Val())
	require.NoError(t, a.Release(ctx))
}

// TestLockFencingContenders: many contenders on two connectors; tokens seen
// in acquisition order strictly increase and no two holders overlap.
func TestLockFencingContenders(t *testing.T) {
	r, c1 := kitRedis(t)
	c2 := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	lockers := []*lockStore{kitLocker(t, c1, ns), kitLocker(t, c2, ns)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const workers, rounds = 8, 15
	var (
		mu      sync.Mutex
		tokens  []uint64
		holders atomic.Int32
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lockers[w%len(lockers)]
			for range rounds {
				ls, err := l.Acquire(ctx, "fenced", backends.LockOptions{TTL: 10 * time.Second})
				if !assert.NoError(t, err) {
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				mu.Lock()
				tokens = append(tokens, ls.Token())
				mu.Unlock()
				holders.Add(-1)
				assert.NoError(t, ls.Release(ctx))
			}
		}()
	}
	wg.Wait()
	require.Len(t, tokens, workers*rounds)
	for i := 1; i < len(tokens); i++ {
		require.Greater(t, tokens[i], tokens[i-1], "token %d", i)
	}
}

func TestLockFencingSurvivesDataLoss(t *testing.T) {
	r, c := kitRedis(t)
	l := kitLocker(t, c, kitNS(t, "dev"))
	ctx := t.Context()
	a, err := l.TryAcquire(ctx, "f", backends.LockOptions{})
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx))
	r.Restart() // empty data: the counter is gone
	var b backends.Lease
	require.Eventually(t, func() bool {
		b, err = l.TryAcquire(ctx, "f", backends.LockOptions{})
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	assert.Greater(t, b.Token(), a.Token(), "counter reseeded from the server clock")
}

func TestLockAutoRenew(t *testing.T) {
	_, c := kitRedis(t)
	l := kitLocker(t, c, kitNS(t, "dev"))
	ctx := t.Context()
	a, err := l.TryAcquire(ctx, "renewed", backends.LockOptions{TTL: 150 * time.Millisecond, AutoRenew: true})
	require.NoError(t, err)

	// Held well past its TTL.
	assert.Never(t, func() bool {
		_, err := l.TryAcquire(ctx, "renewed", backends.LockOptions{})
		select {
		case <-a.Done():
			return true
		default:
			return !errors.Is(err, backends.ErrNotObtained)
		}
	}, 600*time.Millisecond, 20*time.Millisecond, "lease lost despite auto-renew")

	// Someone removes the key behind our back: the next renewal notices.
	owner, _, _ := l.lockKeys("renewed")
	require.NoError(t, c.Client().Del(ctx, owner).Err())
	select {
	case <-a.Done():
	case <-time.After(time.Second):
		t.Fatal("auto-renew did not notice the loss")
	}
	require.ErrorIs(t, a.Release(ctx), backends.ErrNotHeld)
}

// TestLockConnectorDisconnected: a lease whose connector goes away ends at
// its TTL; nothing panics or hangs and the lock becomes free for others.
func TestLockConnectorDisconnected(t *testing.T) {
	r, other := kitRedis(t)
	c := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	l := kitLocker(t, c, ns)
	ctx := t.Context()
	a, err := l.TryAcquire(ctx, "crash", backends.LockOptions{TTL: 300 * time.Millisecond, AutoRenew: true})
	require.NoError(t, err)
	require.NoError(t, c.Disconnect(ctx))
	select {
	case <-a.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("lease did not end after its connector went away")
	}
	assert.ErrorIs(t, a.Release(ctx), backends.ErrClosed)
	_, err = l.Acquire(ctx, "crash", backends.LockOptions{})
	assert.ErrorIs(t, err, backends.ErrClosed)

	b, err := kitLocker(t, other, ns).Acquire(ctx, "crash", backends.LockOptions{})
	require.NoError(t, err)
	require.NoError(t, b.Release(ctx))
}

func TestLockClose(t *testing.T) {
	_, c := kitRedis(t)
	ns := kitNS(t, "dev")
	l, err := newLockStore(c, backends.LockerOptions{Namespace: ns})
	require.NoError(t, err)
	ctx := t.Context()
	a, err := l.TryAcquire(ctx, "held", backends.LockOptions{TTL: time.Minute, AutoRenew: true})
	require.NoError(t, err)
	_, err = l.TryAcquire(ctx, "other", backends.LockOptions{TTL: time.Minute})
	require.NoError(t, err)

	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, "held", backends.LockOptions{})
		errc <- err
	}()
	require.Eventually(t, func() bool { return kitWaiting(l, "held") == 1 }, 2*time.Second, time.Millisecond)

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "idempotent")
	assert.ErrorIs(t, <-errc, backends.ErrClosed)
	assertClosed(t, a.Done())
	assert.ErrorIs(t, a.Release(ctx), backends.ErrClosed)
	_, err = l.TryAcquire(ctx, "x", backends.LockOptions{})
	assert.ErrorIs(t, err, backends.ErrClosed)

	// Close released both locks.
	l2 := kitLocker(t, c, ns)
	for _, name := range []string{"held", "other"} {
		b, err := l2.TryAcquire(ctx, name, backends.LockOptions{})
		require.NoError(t, err, name)
		require.NoError(t, b.Release(ctx))
	}
}

// TestLockCluster checks the scripts' keys share a slot (hash tags) on a
// real Redis Cluster and that notifications cross nodes.
func TestLockCluster(t *testing.T) {
	addrs := kitCluster(t)
	c1 := kitConnect(t, Config{Addrs: addrs})
	c2 := kitConnect(t, Config{Addrs: addrs})
	ns := kitNS(t, "dev")
	l1, l2 := kitLocker(t, c1, ns), kitLocker(t, c2, ns)
	ctx := t.Context()
	names := []string{"alpha", "beta", "gamma", "delta", "{odd}", "}x{", "}", "%7D", "a}b{c}"}
	sort.Strings(names)
	for _, name := range names {
		a, err := l1.TryAcquire(ctx, name, backends.LockOptions{TTL: time.Minute})
		require.NoError(t, err, name)
		require.NoError(t, a.Refresh(ctx, 0), name)
		got := make(chan backends.Lease, 1)
		go func() {
			b, err := l2.Acquire(ctx, name, backends.LockOptions{})
			assert.NoError(t, err)
			got <- b
		}()
		require.Eventually(t, func() bool { return kitWaiting(l2, name) == 1 }, 2*time.Second, time.Millisecond)
		require.NoError(t, a.Release(ctx), name)
		b := <-got
		require.NotNil(t, b)
		assert.Greater(t, b.Token(), a.Token())
		require.NoError(t, b.Release(ctx))
	}
}

// TestLockNotificationsAfterRestart: the shared subscription survives a
// server restart (go-redis resubscribes) and waiters are woken again.
func TestLockNotificationsAfterRestart(t *testing.T) {
	r, c1 := kitRedis(t)
	c2 := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	holder, waiter := kitLocker(t, c1, ns), kitLocker(t, c2, ns)
	ctx := t.Context()

	cycle := func() time.Duration {
		var a backends.Lease
		require.Eventually(t, func() bool {
			var err error
			a, err = holder.TryAcquire(ctx, "r", backends.LockOptions{TTL: time.Minute})
			return err == nil
		}, 5*time.Second, 10*time.Millisecond)
		got := make(chan error, 1)
		var b backends.Lease
		go func() {
			var err error
			b, err = waiter.Acquire(ctx, "r", backends.LockOptions{TTL: time.Minute})
			got <- err
		}()
		require.Eventually(t, func() bool { return kitWaiting(waiter, "r") == 1 }, 2*time.Second, time.Millisecond)
		start := time.Now()
		require.NoError(t, a.Release(ctx))
		select {
		case err := <-got:
			require.NoError(t, err)
		case <-time.After(3 * time.Second):
			t.Fatal("waiter not woken")
		}
		took := time.Since(start)
		require.NoError(t, b.Release(ctx))
		return took
	}
	t.Logf("before restart: woken after %v", cycle())
	r.Restart()
	// Any waiter blocked across the outage returns ErrUnavailable or gets
	// the lock; a new one is woken within the fallback bound at worst.
	took := cycle()
	t.Logf("after restart: woken after %v", took)
	assert.Less(t, took, 1500*time.Millisecond)
}
