package redis

import (
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

// kitRaw is a plain go-redis client of srv, for looking behind the
// components; closed when the test ends.
func kitRaw(t *testing.T, srv *harness.Redis) *goredis.Client {
	t.Helper()
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	return raw
}

// commandCalls reads the calls of every command from INFO commandstats.
func commandCalls(t *testing.T, cl *goredis.Client) map[string]int {
	t.Helper()
	info, err := cl.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.Atoi(v)
				require.NoError(t, err)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

// TestLockHandoffOneWrite: a hand-off is one script run that neither
// deletes the lock nor publishes a release (release + acquire would run two
// scripts, a DEL and a PUBLISH).
func TestLockHandoffOneWrite(t *testing.T) {
	srv, c := kitRedis(t)
	l := kitLocker(t, c, kitNS(t, "dev"))
	ctx := t.Context()
	raw := kitRaw(t, srv)

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	// Warm up: the first run of a script loads it (a NOSCRIPT round trip).
	a, err = a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{})
	require.NoError(t, err)

	before := commandCalls(t, raw)
	b, err := a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{Owner: "next"})
	require.NoError(t, err)
	after := commandCalls(t, raw)
	assert.Equal(t, 1, after["evalsha"]-before["evalsha"], "one script run")
	for _, cmd := range []string{"eval", "del", "publish"} {
		assert.Equal(t, before[cmd], after[cmd], "a hand-off must not run %s", cmd)
	}
	assert.Greater(t, b.Token(), a.Token())
	require.NoError(t, b.Release(ctx))
}

// TestLockHandoffPassesOverRemoteWaiters: Redis has no cross-process queue,
// so a hand-off goes to the owner the holder names while another process's
// blocked Acquire keeps waiting; it gets the lock once the new owner
// releases.
func TestLockHandoffPassesOverRemoteWaiters(t *testing.T) {
	_, c := kitRedis(t)
	ns := kitNS(t, "dev")
	a := kitLocker(t, c, ns)
	b := kitLocker(t, c, ns)
	ctx := t.Context()

	held, err := a.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	type result struct {
		lease backends.Lease
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		ls, err := b.Acquire(ctx, "job", backends.LockOptions{})
		ch <- result{ls, err}
	}()
	require.Eventually(t, func() bool { return kitWaiting(b, "job") == 1 }, 5*time.Second, time.Millisecond)

	next, err := held.(backends.Handoffer).Handoff(ctx, backends.LockOptions{})
	require.NoError(t, err)
	require.Never(t, func() bool { return len(ch) > 0 }, 200*time.Millisecond, 5*time.Millisecond,
		"the remote waiter must not get a lock that was handed off")
	require.NoError(t, next.Release(ctx))
	var got result
	select {
	case got = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("remote waiter not woken by the release")
	}
	require.NoError(t, got.err)
	assert.Greater(t, got.lease.Token(), next.Token())
	require.NoError(t, got.lease.Release(ctx))
}

// TestLockHandoffChecksHolderOnServer: a lease that still believes it holds
// the lock, while Redis says somebody else does, is refused by the script
// itself (not by local state): ErrNotHeld, and the other holder untouched.
func TestLockHandoffChecksHolderOnServer(t *testing.T) {
	srv, c := kitRedis(t)
	l := kitLocker(t, c, kitNS(t, "dev"))
	ctx := t.Context()
	raw := kitRaw(t, srv)

	a, err := l.TryAcquire(ctx, "job", backends.LockOptions{})
	require.NoError(t, err)
	ownerKey, fenceKey, _ := l.lockKeys("job")
	require.NoError(t, raw.Set(ctx, ownerKey, "someone|else", time.Minute).Err())
	fence, err := raw.Get(ctx, fenceKey).Uint64()
	require.NoError(t, err)

	_, err = a.(backends.Handoffer).Handoff(ctx, backends.LockOptions{})
	require.ErrorIs(t, err, backends.ErrNotHeld)
	assert.Equal(t, "someone|else", raw.Get(ctx, ownerKey).Val(), "the real holder was overwritten")
	after, err := raw.Get(ctx, fenceKey).Uint64()
	require.NoError(t, err)
	assert.Equal(t, fence, after, "a refused hand-off must not use up a token")
	assertClosed(t, a.Done())
}
