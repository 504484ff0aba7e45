package components_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/internal/components"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lockEnv is one real backend server with a connected Locker and Elector,
// shared by the subtests of one backend (each uses its own names and its
// own lock or election actor).
type lockEnv struct {
	backend string
	sys     *actor.ActorSystem
	conn    backends.Connector
	locker  backends.Locker
	elector backends.Elector
	// newConn returns another, unconnected connector to the same server.
	newConn func(t *testing.T) backends.Connector
	// contenders counts the keys queued in etcd under a lock of the test
	// namespace (etcd only).
	contenders func(t *testing.T, name string) int
	stop       func()
	start      func()
}

// lockElectionTTL is the session TTL of the test electors: short, so a
// lost leadership is noticed quickly.
const lockElectionTTL = 2 * time.Second

// forEachLockBackend runs f once against a real Redis and once against a
// real etcd.
func forEachLockBackend(t *testing.T, f func(t *testing.T, env *lockEnv)) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) { f(t, newLockEnv(t, backend)) })
	}
}

func newLockEnv(t *testing.T, backend string, redisOpts ...harness.RedisOption) *lockEnv {
	t.Helper()
	ns := backends.Namespace{Env: "test"}
	env := &lockEnv{backend: backend}
	switch backend {
	case backends.BackendRedis:
		r := harness.StartRedis(t, redisOpts...)
		env.stop, env.start = r.Stop, r.Start
		env.newConn = func(t *testing.T) backends.Connector {
			cfg := redis.DefaultConfig()
			cfg.Addrs = []string{r.Addr()}
			conn, err := redis.NewConnector(cfg, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Disconnect(context.Background()) })
			return conn
		}
		conn := env.newConn(t).(*redis.Connector)
		require.NoError(t, conn.Connect(t.Context()))
		l, err := redis.NewLocker(conn, backends.LockerOptions{Namespace: ns})
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		e, err := redis.NewElector(conn, backends.ElectorOptions{Namespace: ns, TTL: lockElectionTTL})
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		env.conn, env.locker, env.elector = conn, l, e
	default:
		s := harness.StartEtcd(t)
		env.stop, env.start = s.Stop, s.Start
		env.newConn = func(t *testing.T) backends.Connector {
			cfg := etcd.DefaultConfig()
			cfg.Endpoints = s.Endpoints()
			conn, err := etcd.NewConnector(cfg, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Disconnect(context.Background()) })
			return conn
		}
		conn := env.newConn(t).(*etcd.Connector)
		require.NoError(t, conn.Connect(t.Context()))
		env.contenders = func(t *testing.T, name string) int {
			resp, err := conn.Client().Get(t.Context(), ns.Prefix(backends.ComponentLock, name), clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(t, err)
			return int(resp.Count)
		}
		l, err := etcd.NewLocker(conn, backends.LockerOptions{Namespace: ns})
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		e, err := etcd.NewElector(conn, backends.ElectorOptions{Namespace: ns, TTL: lockElectionTTL})
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		env.conn, env.locker, env.elector = conn, l, e
	}
	env.sys = actors.NewSystem(nil)
	t.Cleanup(env.sys.Shutdown)
	return env
}

// newLockerOn returns a Locker for ns on conn (a Redis or etcd connector),
// closed when the test ends.
func newLockerOn(t *testing.T, conn backends.Connector, ns backends.Namespace) backends.Locker {
	t.Helper()
	var (
		l   backends.Locker
		err error
	)
	switch c := conn.(type) {
	case *redis.Connector:
		l, err = redis.NewLocker(c, backends.LockerOptions{Namespace: ns})
	case *etcd.Connector:
		l, err = etcd.NewLocker(c, backends.LockerOptions{Namespace: ns})
	default:
		t.Fatalf("no locker for %T", conn)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var lockActorSeq atomic.Int64

// spawnLockActor starts a lock actor on env's locker; it is stopped (and
// so cleans up) when the test ends.
func (env *lockEnv) spawnLockActor(t *testing.T, cfg components.LockActorConfig) *actor.PID {
	t.Helper()
	if cfg.Locker == nil {
		cfg.Locker = env.locker
	}
	cfg.Backend = env.backend
	return env.spawnLockActorAs(t, cfg)
}

// spawnLockActorAs starts a lock actor with cfg as given.
func (env *lockEnv) spawnLockActorAs(t *testing.T, cfg components.LockActorConfig) *actor.PID {
	t.Helper()
	pid, err := env.sys.Root.SpawnNamed(components.NewLockActorProps(cfg), fmt.Sprintf("lock-%d", lockActorSeq.Add(1)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.sys.Root.StopFuture(pid).Wait() })
	return pid
}

// lockInbox is a test actor that collects the messages sent to it (answers
// and events) and acknowledges subscription events to ackTo.
type lockInbox struct {
	pid *actor.PID
	ch  chan any
}

func (env *lockEnv) newInbox(t *testing.T, ackTo *actor.PID) *lockInbox {
	t.Helper()
	ib := &lockInbox{ch: make(chan any, 1024)}
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
			return
		case *electionv1.LeaderChanged:
			ctx.Send(ackTo, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		case *subscriptionv1.Resync:
			ctx.Send(ackTo, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		}
		ib.ch <- ctx.Message()
	})
	pid, err := env.sys.Root.SpawnNamed(props, fmt.Sprintf("inbox-%d", lockActorSeq.Add(1)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.sys.Root.StopFuture(pid).Wait() })
	ib.pid = pid
	return ib
}

// next returns the next message of type T, failing after d. Messages of
// other types are skipped.
func lockInboxNext[T any](t *testing.T, ib *lockInbox, d time.Duration) T {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-ib.ch:
			if v, ok := m.(T); ok {
				return v
			}
		case <-deadline:
			var zero T
			require.FailNow(t, "timed out", "no %T after %v", zero, d)
			return zero
		}
	}
}

// quiet checks that nothing arrives at ib for d.
func (ib *lockInbox) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-ib.ch:
		require.FailNow(t, "unexpected message", "%T %v", m, m)
	case <-time.After(d):
	}
}

func lockCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func tryLock(ctx context.Context, env *lockEnv, pid *actor.PID, name, owner string) (*lockv1.Lease, error) {
	resp, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{Name: name, Owner: owner})
	return resp.GetLease(), err
}

func releaseLock(ctx context.Context, env *lockEnv, pid *actor.PID, l *lockv1.Lease) error {
	_, err := actors.Request[*lockv1.ReleaseResponse](ctx, env.sys.Root, pid, &lockv1.ReleaseRequest{Name: l.GetName(), LeaseId: l.GetLeaseId()})
	return err
}

// waitLock sends a waiting AcquireRequest whose answer goes to ib.
func waitLock(env *lockEnv, pid *actor.PID, ib *lockInbox, name, owner, requestID string) {
	env.sys.Root.RequestWithCustomSender(pid, &lockv1.AcquireRequest{
		Name: name, Owner: owner, Wait: true, RequestId: requestID,
	}, ib.pid)
}

func TestLockActor(t *testing.T) {
	forEachLockBackend(t, func(t *testing.T, env *lockEnv) {
		t.Run("FIFOHandoff", func(t *testing.T) { testLockFIFO(t, env) })
		t.Run("MailboxNotBlocked", func(t *testing.T) { testLockMailboxNotBlocked(t, env) })
		t.Run("CancelQueued", func(t *testing.T) { testLockCancelQueued(t, env) })
		t.Run("CancelInFlight", func(t *testing.T) { testLockCancelInFlight(t, env) })
		t.Run("CancelAfterGrant", func(t *testing.T) { testLockCancelAfterGrant(t, env) })
		t.Run("WaitTimeout", func(t *testing.T) { testLockWaitTimeout(t, env) })
		t.Run("BadInput", func(t *testing.T) { testLockBadInput(t, env) })
		t.Run("LeaseLost", func(t *testing.T) { testLockLeaseLost(t, env) })
		t.Run("StopAnswersParked", func(t *testing.T) { testLockStop(t, env) })
		t.Run("RestartAnswersParked", func(t *testing.T) { testLockRestart(t, env) })
	})
}

// testLockFIFO: 20 waiters queued on one lock behind a holder are granted
// in arrival order, each with a greater token (handed off in one backend
// write, see TestLockActorHandoff); every holder releases at once and the
// next is served without polling.
func testLockFIFO(t *testing.T, env *lockEnv) {
	const waiters = 20
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 60*time.Second)

	holder, err := tryLock(ctx, env, pid, "fifo", "holder")
	require.NoError(t, err)
	// One sender, sent one after the other: the actor sees them in this order.
	for i := range waiters {
		waitLock(env, pid, ib, "fifo", fmt.Sprintf("w%02d", i), fmt.Sprintf("fifo-%02d", i))
	}
	ib.quiet(t, 200*time.Millisecond)

	var (
		order    []string
		tokens   = []uint64{holder.GetToken()}
		handoffs []time.Duration
		prev     = holder
		released time.Time
	)
	for range waiters {
		released = time.Now()
		require.NoError(t, releaseLock(ctx, env, pid, prev))
		resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 10*time.Second)
		granted := time.Now()
		require.NoError(t, resp.GetStatus().Err())
		handoffs = append(handoffs, granted.Sub(released))
		order = append(order, resp.GetLease().GetOwner())
		tokens = append(tokens, resp.GetLease().GetToken())
		prev = resp.GetLease()
	}
	require.NoError(t, releaseLock(ctx, env, pid, prev))

	want := make([]string, waiters)
	for i := range want {
		want[i] = fmt.Sprintf("w%02d", i)
	}
	assert.Equal(t, want, order, "grant order")
	for i := 1; i < len(tokens); i++ {
		assert.Greater(t, tokens[i], tokens[i-1], "token %d after token %d: %v", i, i-1, tokens)
	}
	sorted := slices.Clone(handoffs)
	slices.Sort(sorted)
	t.Logf("%s: local hand-off (release sent → next waiter granted) over %d hand-offs: p50 %v, p90 %v, max %v",
		env.backend, len(sorted), sorted[len(sorted)/2], sorted[len(sorted)*9/10], sorted[len(sorted)-1])
}

// testLockMailboxNotBlocked: while a waiter is parked, other requests are
// answered at once.
func testLockMailboxNotBlocked(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	// Held outside the actor, so the parked waiter is running its backend
	// Acquire (not just queued).
	outside, err := env.locker.TryAcquire(ctx, "busy", backends.LockOptions{})
	require.NoError(t, err)
	waitLock(env, pid, ib, "busy", "parked", "parked")
	ib.quiet(t, 200*time.Millisecond)

	start := time.Now()
	other, err := tryLock(ctx, env, pid, "other", "")
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second, "try-acquire of another name while a waiter is parked")

	start = time.Now()
	_, err = actors.Request[*lockv1.RefreshResponse](ctx, env.sys.Root, pid, &lockv1.RefreshRequest{Name: "busy", LeaseId: "nope"})
	assert.ErrorIs(t, err, backends.ErrNotHeld)
	assert.Less(t, time.Since(start), time.Second, "refresh of the parked waiter's lock while it is parked")

	require.NoError(t, releaseLock(ctx, env, pid, other))
	require.NoError(t, outside.Release(ctx))
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 10*time.Second)
	require.NoError(t, resp.GetStatus().Err())
	assert.Greater(t, resp.GetLease().GetToken(), outside.Token())
	require.NoError(t, releaseLock(ctx, env, pid, resp.GetLease()))
}

// testLockCancelQueued: a waiter queued behind a local holder is withdrawn;
// once the holder releases, a fresh owner gets the lock at once.
func testLockCancelQueued(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	holder, err := tryLock(ctx, env, pid, "job", "holder")
	require.NoError(t, err)
	waitLock(env, pid, ib, "job", "waiter", "queued-1")
	waitLock(env, pid, ib, "job", "waiter2", "queued-2")
	_, err = actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "queued-1"})
	require.NoError(t, err)
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.Canceled)
	_, err = actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "queued-2"})
	require.NoError(t, err)
	resp = lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.Canceled)
	// Cancelling again, or an unknown request, is not an error.
	_, err = actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "queued-1"})
	require.NoError(t, err)

	require.NoError(t, releaseLock(ctx, env, pid, holder))
	fresh, err := tryLock(ctx, env, pid, "job", "fresh")
	require.NoError(t, err, "a withdrawn waiter was left behind")
	assert.Equal(t, "fresh", fresh.GetOwner())
	require.NoError(t, releaseLock(ctx, env, pid, fresh))
	ib.quiet(t, 100*time.Millisecond)
}

// testLockCancelInFlight: a waiter whose backend Acquire is running (the
// holder is outside the actor) is withdrawn; the CancelResponse comes once
// the backend call returned, so nothing of it is left: a fresh owner, also
// outside the actor, gets the lock right after the holder releases.
func testLockCancelInFlight(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	outside, err := env.locker.TryAcquire(ctx, "job2", backends.LockOptions{})
	require.NoError(t, err)
	waitLock(env, pid, ib, "job2", "waiter", "inflight")
	ib.quiet(t, 200*time.Millisecond)
	start := time.Now()
	_, err = actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "inflight"})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second, "cancel of a running acquire")
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.Canceled)

	require.NoError(t, outside.Release(ctx))
	fresh, err := env.locker.TryAcquire(ctx, "job2", backends.LockOptions{Owner: "fresh"})
	require.NoError(t, err, "a withdrawn waiter was left behind")
	require.NoError(t, fresh.Release(ctx))
	ib.quiet(t, 100*time.Millisecond)
}

// testLockCancelAfterGrant: a CancelRequest for a request already granted
// gives the lease up.
func testLockCancelAfterGrant(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	waitLock(env, pid, ib, "job3", "gone", "granted")
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	require.NoError(t, resp.GetStatus().Err())
	_, err := actors.Request[*lockv1.CancelResponse](ctx, env.sys.Root, pid, &lockv1.CancelRequest{RequestId: "granted"})
	require.NoError(t, err)
	fresh, err := env.locker.TryAcquire(ctx, "job3", backends.LockOptions{Owner: "fresh"})
	require.NoError(t, err, "the grant of a cancelled request was kept")
	require.NoError(t, fresh.Release(ctx))
	assert.ErrorIs(t, releaseLock(ctx, env, pid, resp.GetLease()), backends.ErrNotHeld)
	ib.quiet(t, 100*time.Millisecond) // no LeaseLost for a lease given up on request
}

// testLockWaitTimeout: a waiter's timeout is answered DEADLINE_EXCEEDED,
// queued or running, and leaves nothing behind.
func testLockWaitTimeout(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	holder, err := tryLock(ctx, env, pid, "slow", "holder")
	require.NoError(t, err)
	start := time.Now()
	env.sys.Root.RequestWithCustomSender(pid, &lockv1.AcquireRequest{
		Name: "slow", Wait: true, RequestId: "t1", Timeout: durationpb.New(300 * time.Millisecond),
	}, ib.pid)
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, releaseLock(ctx, env, pid, holder))

	outside, err := env.locker.TryAcquire(ctx, "slow", backends.LockOptions{})
	require.NoError(t, err)
	env.sys.Root.RequestWithCustomSender(pid, &lockv1.AcquireRequest{
		Name: "slow", Wait: true, RequestId: "t2", Timeout: durationpb.New(300 * time.Millisecond),
	}, ib.pid)
	resp = lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.DeadlineExceeded)
	require.NoError(t, outside.Release(ctx))
	fresh, err := tryLock(ctx, env, pid, "slow", "fresh")
	require.NoError(t, err)
	require.NoError(t, releaseLock(ctx, env, pid, fresh))
}

// testLockBadInput: malformed and unknown messages are answered with
// INVALID_ARGUMENT (unknown handles NOT_HELD) and the actor keeps serving.
func testLockBadInput(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ctx := lockCtx(t, 30*time.Second)
	root := env.sys.Root

	_, err := actors.Request[*lockv1.AcquireResponse](ctx, root, pid, &lockv1.Lease{Name: "not a request"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "unknown proto message")
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: "ok"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "election requests go to the election actor")
	res, err := root.RequestFuture(pid, "plain string", 5*time.Second).Result()
	require.NoError(t, err)
	st, ok := res.(*statusv1.Status)
	require.True(t, ok, "%T", res)
	assert.ErrorIs(t, st.Err(), backends.ErrInvalidArgument, "unknown Go value")

	for what, req := range map[string]*lockv1.AcquireRequest{
		"empty name":       {Name: ""},
		"slash in name":    {Name: "a/b"},
		"negative ttl":     {Name: "ok", Ttl: durationpb.New(-time.Second)},
		"negative timeout": {Name: "ok", Wait: true, Timeout: durationpb.New(-time.Second)},
		"long owner":       {Name: "ok", Owner: strings.Repeat("o", backends.MaxNameLen+1)},
		"malformed ttl":    {Name: "ok", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -5}},
	} {
		_, err = actors.Request[*lockv1.AcquireResponse](ctx, root, pid, req)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, what)
	}
	_, err = actors.Request[*lockv1.ReleaseResponse](ctx, root, pid, &lockv1.ReleaseRequest{Name: "ok", LeaseId: "nope"})
	assert.ErrorIs(t, err, backends.ErrNotHeld, "release of an unknown lease")
	_, err = actors.Request[*lockv1.RefreshResponse](ctx, root, pid, &lockv1.RefreshRequest{Name: "ok", LeaseId: "nope"})
	assert.ErrorIs(t, err, backends.ErrNotHeld, "refresh of an unknown lease")

	l, err := tryLock(ctx, env, pid, "ok", "")
	require.NoError(t, err, "the actor keeps serving")
	assert.NotEmpty(t, l.GetOwner())
	_, err = actors.Request[*lockv1.RefreshResponse](ctx, root, pid, &lockv1.RefreshRequest{Name: "ok", LeaseId: l.GetLeaseId(), Ttl: durationpb.New(-time.Second)})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "refresh with a negative ttl")
	_, err = actors.Request[*lockv1.RefreshResponse](ctx, root, pid, &lockv1.RefreshRequest{Name: "other", LeaseId: l.GetLeaseId()})
	assert.ErrorIs(t, err, backends.ErrNotHeld, "refresh naming another lock")
	_, err = actors.Request[*lockv1.RefreshResponse](ctx, root, pid, &lockv1.RefreshRequest{Name: "ok", LeaseId: l.GetLeaseId()})
	require.NoError(t, err)
	// A request id may not be reused while its request lives.
	_, err = actors.Request[*lockv1.AcquireResponse](ctx, root, pid, &lockv1.AcquireRequest{Name: "ok2", RequestId: "same"})
	require.NoError(t, err)
	_, err = actors.Request[*lockv1.AcquireResponse](ctx, root, pid, &lockv1.AcquireRequest{Name: "ok3", RequestId: "same"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "request id in use")
	require.NoError(t, releaseLock(ctx, env, pid, l))
}

// testLockLeaseLost: a lease that expires (no refresh, no auto-renewal)
// is reported to its subscriber with LeaseLost.
func testLockLeaseLost(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	resp, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{
		Name: "expiring", Ttl: durationpb.New(2 * time.Second), Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	start := time.Now()
	lost := lockInboxNext[*lockv1.LeaseLost](t, ib, 10*time.Second)
	t.Logf("%s: LeaseLost %v after the grant of a 2s lease", env.backend, time.Since(start))
	assert.Equal(t, resp.GetLease().GetLeaseId(), lost.GetLeaseId())
	assert.Equal(t, "expiring", lost.GetName())
	assert.Equal(t, statusv1.Code_CODE_NOT_HELD, lost.GetCause().GetCode())
	assert.ErrorIs(t, releaseLock(ctx, env, pid, resp.GetLease()), backends.ErrNotHeld)
	require.Eventually(t, func() bool {
		l, err := tryLock(ctx, env, pid, "expiring", "")
		if err != nil {
			return false
		}
		return releaseLock(ctx, env, pid, l) == nil
	}, 5*time.Second, 50*time.Millisecond)
}

// testLockStop: stopping the actor answers parked waiters CODE_CLOSED,
// releases what it holds and tells the holders.
func testLockStop(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	held, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{
		Name: "stop", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	waitLock(env, pid, ib, "stop", "queued", "q")
	outside, err := env.locker.TryAcquire(ctx, "stop2", backends.LockOptions{})
	require.NoError(t, err)
	waitLock(env, pid, ib, "stop2", "running", "r")
	ib.quiet(t, 200*time.Millisecond)

	require.NoError(t, env.sys.Root.StopFuture(pid).Wait())
	var answers []statusv1.Code
	var lost *lockv1.LeaseLost
	for len(answers) < 2 || lost == nil {
		switch m := lockInboxNext[any](t, ib, 5*time.Second).(type) {
		case *lockv1.AcquireResponse:
			answers = append(answers, m.GetStatus().GetCode())
		case *lockv1.LeaseLost:
			lost = m
		}
	}
	assert.Equal(t, []statusv1.Code{statusv1.Code_CODE_CLOSED, statusv1.Code_CODE_CLOSED}, answers)
	assert.Equal(t, held.GetLease().GetLeaseId(), lost.GetLeaseId())
	assert.Equal(t, statusv1.Code_CODE_CLOSED, lost.GetCause().GetCode())

	fresh, err := env.locker.TryAcquire(ctx, "stop", backends.LockOptions{})
	require.NoError(t, err, "the stopped actor kept its lease")
	require.NoError(t, fresh.Release(ctx))
	require.NoError(t, outside.Release(ctx))
	fresh, err = env.locker.TryAcquire(ctx, "stop2", backends.LockOptions{})
	require.NoError(t, err, "the stopped actor left its running waiter behind")
	require.NoError(t, fresh.Release(ctx))
}

// testLockRestart: a restarted actor answers the parked waiters of its
// previous incarnation CODE_UNAVAILABLE, gives back its leases, and serves
// again.
func testLockRestart(t *testing.T, env *lockEnv) {
	pid := env.spawnLockActor(t, components.LockActorConfig{})
	ib := env.newInbox(t, pid)
	ctx := lockCtx(t, 30*time.Second)

	_, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{
		Name: "restart", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	waitLock(env, pid, ib, "restart", "queued", "q")
	ib.quiet(t, 100*time.Millisecond)

	proc, _ := env.sys.ProcessRegistry.Get(pid)
	proc.SendSystemMessage(pid, &actor.Restart{})
	resp := lockInboxNext[*lockv1.AcquireResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), backends.ErrUnavailable)
	lost := lockInboxNext[*lockv1.LeaseLost](t, ib, 5*time.Second)
	assert.Equal(t, statusv1.Code_CODE_CLOSED, lost.GetCause().GetCode())

	l, err := tryLock(ctx, env, pid, "restart", "again")
	require.NoError(t, err, "the restarted actor serves, and the old lease was given back")
	require.NoError(t, releaseLock(ctx, env, pid, l))
}

// TestLockActorBackendGate: while the connector supervisor reports the
// backend down, requests fail fast with UNAVAILABLE; when it is back they
// are served again, with no restart of the lock actor.
func TestLockActorBackendGate(t *testing.T) {
	forEachLockBackend(t, func(t *testing.T, env *lockEnv) {
		conn := env.newConn(t)
		locker := newLockerOn(t, conn, backends.Namespace{Env: "gate"})
		sup, err := env.sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
			Connectors: []backends.Connector{conn}, HealthInterval: 100 * time.Millisecond,
			ConnectTimeout: time.Second,
			Backoff:        components.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		}), fmt.Sprintf("supervisor-%d", lockActorSeq.Add(1)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = env.sys.Root.StopFuture(sup).Wait() })
		pid := env.spawnLockActor(t, components.LockActorConfig{Locker: locker, Supervisor: sup})
		ctx := lockCtx(t, 60*time.Second)

		require.Eventually(t, func() bool {
			l, err := tryLock(ctx, env, pid, "gated", "")
			return err == nil && releaseLock(ctx, env, pid, l) == nil
		}, 10*time.Second, 50*time.Millisecond, "never served while up")

		env.stop()
		require.Eventually(t, func() bool {
			start := time.Now()
			_, err := tryLock(ctx, env, pid, "gated", "")
			return errors.Is(err, backends.ErrUnavailable) && time.Since(start) < 100*time.Millisecond
		}, 10*time.Second, 50*time.Millisecond, "requests do not fail fast while the backend is down")

		env.start()
		require.Eventually(t, func() bool {
			l, err := tryLock(ctx, env, pid, "gated", "")
			return err == nil && releaseLock(ctx, env, pid, l) == nil
		}, 20*time.Second, 100*time.Millisecond, "not served again after the backend came back")
	})
}
