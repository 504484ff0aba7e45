package components_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/components"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// countingLocker counts the backend calls a lock actor makes through a
// real Locker.
type countingLocker struct {
	backends.Locker
	acquires, tries, releases, handoffs atomic.Int64
}

func (c *countingLocker) Acquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	c.acquires.Add(1)
	return c.wrap(c.Locker.Acquire(ctx, name, opts))
}

func (c *countingLocker) TryAcquire(ctx context.Context, name string, opts backends.LockOptions) (backends.Lease, error) {
	c.tries.Add(1)
	return c.wrap(c.Locker.TryAcquire(ctx, name, opts))
}

func (c *countingLocker) wrap(l backends.Lease, err error) (backends.Lease, error) {
	if err != nil {
		return nil, err
	}
	return &countingLease{Lease: l, c: c}, nil
}

type countingLease struct {
	backends.Lease
	c *countingLocker
}

func (l *countingLease) Release(ctx context.Context) error {
	l.c.releases.Add(1)
	return l.Lease.Release(ctx)
}

func (l *countingLease) Handoff(ctx context.Context, opts backends.LockOptions) (backends.Lease, error) {
	l.c.handoffs.Add(1)
	return l.c.wrap(l.Lease.(backends.Handoffer).Handoff(ctx, opts))
}

// outsideResult is what an Acquire outside the lock actor returned.
type outsideResult struct {
	lease backends.Lease
	err   error
}

// acquireOutside runs a blocking Acquire of name, as owner "outsider",
// through a Locker on a connector of its own — another process, as far as
// the lock actor can tell — and delivers the result on the channel.
func (env *lockEnv) acquireOutside(ctx context.Context, t *testing.T, name string) <-chan outsideResult {
	t.Helper()
	conn := env.newConn(t)
	require.NoError(t, conn.Connect(ctx))
	l := newLockerOn(t, conn, backends.Namespace{Env: "test"})
	ch := make(chan outsideResult, 1)
	go func() {
		lease, err := l.Acquire(ctx, name, backends.LockOptions{Owner: "outsider"})
		ch <- outsideResult{lease, err}
	}()
	return ch
}

func TestLockActorHandoff(t *testing.T) {
	forEachLockBackend(t, func(t *testing.T, env *lockEnv) {
		t.Run("OneCallPerRelease", func(t *testing.T) { testLockHandoffCalls(t, env) })
		t.Run("CancelHandsOff", func(t *testing.T) { testLockHandoffOnCancel(t, env) })
		t.Run("OutsideContender", func(t *testing.T) { testLockHandoffOutside(t, env) })
		t.Run("LimitLetsOutsidersIn", func(t *testing.T) { testLockHandoffLimit(t, env) })
	})
}

// testLockHandoffCalls: with waiters queued behind a local holder, every
// release is served by one Handoff — no backend release, no acquire — in
// FIFO order with increasing tokens; only the last holder's release goes to
// the backend.
func testLockHandoffCalls(t *testing.T, env *lockEnv) {
	const waiters = 5
	cl := &countingLocker{Locker: env.locker}
	// No limit: a slow machine must not turn a hand-off into a release.
	pid := env.spawnLockActor(t, components.LockActorConfig{Locker: cl, HandoffLimit: -1})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	prev, err := tryLock(ctx, env, pid, "counted", "holder")
	require.NoError(t, err)
	for i := range waiters {
		waitLock(env, pid, ib, "counted", fmt.Sprintf("w%d", i), fmt.Sprintf("counted-%d", i))
	}
	ib.quiet(t, 100*time.Millisecond)
	for i := range waiters {
		require.NoError(t, releaseLock(ctx, env, pid, prev))
		resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 10*time.Second)
		require.NoError(t, resp.GetStatus().Err())
		assert.Equal(t, fmt.Sprintf("w%d", i), resp.GetLease().GetOwner())
		assert.Greater(t, resp.GetLease().GetToken(), prev.GetToken())
		prev = resp.GetLease()
	}
	require.NoError(t, releaseLock(ctx, env, pid, prev))

	assert.Equal(t, int64(waiters), cl.handoffs.Load(), "one hand-off per release with a waiter queued")
	assert.Equal(t, int64(0), cl.acquires.Load(), "no waiter needed a backend acquire")
	assert.Equal(t, int64(1), cl.tries.Load())
	assert.Equal(t, int64(1), cl.releases.Load(), "only the last release reaches the backend")
	fresh, err := env.locker.TryAcquire(ctx, "counted", backends.LockOptions{})
	require.NoError(t, err, "the lock is free after the last release")
	require.NoError(t, fresh.Release(ctx))
}

// testLockHandoffOnCancel: a holder that withdraws its granted request
// hands the lock to the next waiter too.
func testLockHandoffOnCancel(t *testing.T, env *lockEnv) {
	cl := &countingLocker{Locker: env.locker}
	pid := env.spawnLockActor(t, components.LockActorConfig{Locker: cl, HandoffLimit: -1})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	waitLock(env, pid, ib, "withdrawn", "first", "first")
	first := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	require.NoError(t, first.GetStatus().Err())
	waitLock(env, pid, ib, "withdrawn", "second", "second")
	ib.quiet(t, 100*time.Millisecond)
	_, err := actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "first"})
	require.NoError(t, err)
	second := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	require.NoError(t, second.GetStatus().Err())
	assert.Equal(t, "second", second.GetLease().GetOwner())
	assert.Greater(t, second.GetLease().GetToken(), first.GetLease().GetToken())
	assert.Equal(t, int64(1), cl.handoffs.Load())
	assert.Equal(t, int64(0), cl.releases.Load())
	require.NoError(t, releaseLock(ctx, env, pid, second.GetLease()))
}

// testLockHandoffOutside: a contender of another process blocks in the
// backend's Acquire while a local waiter queues in the actor. etcd keeps
// its own FIFO, so the hand-off is refused and the outside contender, first
// in etcd's queue, goes first; Redis has no cross-process order, so the
// holder hands the lock to its local waiter and the outsider keeps waiting.
// Either way nobody is granted twice and tokens increase.
func testLockHandoffOutside(t *testing.T, env *lockEnv) {
	cl := &countingLocker{Locker: env.locker}
	pid := env.spawnLockActor(t, components.LockActorConfig{Locker: cl})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	holder, err := tryLock(ctx, env, pid, "shared", "holder")
	require.NoError(t, err)
	out := env.acquireOutside(ctx, t, "shared")
	if env.contenders != nil {
		// etcd: the outsider's key queues behind the holder's.
		require.Eventually(t, func() bool { return env.contenders(t, "shared") == 2 }, 5*time.Second, time.Millisecond)
	}
	waitLock(env, pid, ib, "shared", "local", "local")
	ib.quiet(t, 100*time.Millisecond)
	require.NoError(t, releaseLock(ctx, env, pid, holder))

	if env.backend == backends.BackendEtcd {
		var o backends.Lease
		select {
		case r := <-out:
			require.NoError(t, r.err)
			o = r.lease
		case <-time.After(10 * time.Second):
			t.Fatal("the contender queued first in etcd was overtaken")
		}
		assert.Greater(t, o.Token(), holder.GetToken())
		ib.quiet(t, 100*time.Millisecond) // the local waiter waits its turn
		require.NoError(t, o.Release(ctx))
		local := lockInboxNext[*lockv1.AcquireResponse](t, ib, 10*time.Second)
		require.NoError(t, local.GetStatus().Err())
		assert.Greater(t, local.GetLease().GetToken(), o.Token())
		assert.Equal(t, int64(1), cl.handoffs.Load(), "the hand-off was tried")
		assert.Equal(t, int64(1), cl.acquires.Load(), "and refused: the local waiter acquired")
		require.NoError(t, releaseLock(ctx, env, pid, local.GetLease()))
		return
	}
	local := lockInboxNext[*lockv1.AcquireResponse](t, ib, 10*time.Second)
	require.NoError(t, local.GetStatus().Err())
	assert.Equal(t, "local", local.GetLease().GetOwner())
	assert.Greater(t, local.GetLease().GetToken(), holder.GetToken())
	assert.Empty(t, out, "the outsider got a lock that was handed off")
	require.NoError(t, releaseLock(ctx, env, pid, local.GetLease()))
	select {
	case r := <-out:
		require.NoError(t, r.err)
		assert.Greater(t, r.lease.Token(), local.GetLease().GetToken())
		require.NoError(t, r.lease.Release(ctx))
	case <-time.After(10 * time.Second):
		t.Fatal("the outsider was not served after the release")
	}
}

// testLockHandoffLimit: the lock passes from local waiter to local waiter
// without end — every grant is released at once and a new waiter queued,
// so the queue is never empty — and yet an Acquire of another process gets
// it: on Redis because the chain is broken by a release and a short yield
// after HandoffLimit, on etcd because its queued key refuses the hand-off.
// Without the limit the Redis outsider would wait for ever.
func testLockHandoffLimit(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{HandoffLimit: 100 * time.Millisecond})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	prev, err := tryLock(ctx, env, pid, "busy", "first")
	require.NoError(t, err)
	next := 0
	enqueue := func() {
		waitLock(env, pid, ib, "busy", "", fmt.Sprintf("busy-%d", next))
		next++
	}
	for range 3 {
		enqueue()
	}
	out := env.acquireOutside(lockCtx(t, 10*time.Second), t, "busy")
	require.NoError(t, releaseLock(ctx, env, pid, prev))
	for {
		select {
		case r := <-out:
			require.NoError(t, r.err, "the outsider was starved (%d local grants)", next-3)
			require.NoError(t, r.lease.Release(ctx))
			t.Logf("%s: the outsider got the lock after %d local grants", env.backend, next-3)
			return // the actor answers the waiters still queued when it stops
		case m := <-ib.ch:
			resp, ok := m.(*lockv1.AcquireResponse)
			if !ok {
				continue
			}
			require.NoError(t, resp.GetStatus().Err())
			enqueue()
			require.NoError(t, releaseLock(ctx, env, pid, resp.GetLease()))
		}
	}
}

// TestLockActorRetriesReleaseForGoneHolder: a holder withdraws its grant
// while etcd is down, so the release fails; the actor forgets the grant but
// keeps releasing in the background, because the lease is auto-renewed and
// would otherwise stay held for good. Once etcd is back the lock is free
// well before its TTL could have run out. (etcd only: the test Redis comes
// back empty, which would free the lock whatever the actor did.)
func TestLockActorRetriesReleaseForGoneHolder(t *testing.T) {
	env := newLockEnv(t, backends.BackendEtcd)
	pid := env.spawnLockActor(t, components.LockActorConfig{OpTimeout: 300 * time.Millisecond})
	ctx := lockCtx(t, 60*time.Second)

	_, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{
		Name: "orphan", RequestId: "orphan", AutoRenew: true, Ttl: durationpb.New(20 * time.Second),
	})
	require.NoError(t, err)
	env.stop()
	_, err = actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "orphan"})
	require.NoError(t, err, "a withdrawal is answered even when the release fails")
	env.start()
	require.Eventually(t, func() bool {
		l, err := env.locker.TryAcquire(ctx, "orphan", backends.LockOptions{})
		if err != nil {
			return false
		}
		return l.Release(ctx) == nil
	}, 10*time.Second, 50*time.Millisecond, "the withdrawn, auto-renewed lease was never released")
}
