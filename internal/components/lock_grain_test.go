package components_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/internal/components"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// TestLockGrain: a grain serves its one lock name, frees the lock of a
// holder that stops (without waiting for the TTL: it is handed to the next
// waiter), withdraws the waits of
// a waiter that stops, and passivates when idle.
func TestLockGrain(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	locker, err := redis.NewLocker(srv.conn.(*redis.Connector), backends.LockerOptions{Namespace: testNamespace(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = locker.Close() })
	released := make(chan struct{}, 4)
	counted := &countingLocker{Locker: locker}
	grain, err := sys.Root.SpawnNamed(components.NewLockGrainProps(components.LockGrainConfig{
		Activate: func(actor.Context) (components.LockActorConfig, string, func(), error) {
			return components.LockActorConfig{Locker: counted, Backend: backends.BackendRedis}, "g",
				func() { released <- struct{}{} }, nil
		},
		IdleTimeout: 300 * time.Millisecond,
	}), "grain-g")
	require.NoError(t, err)

	// Subscribers stand for the facades of other processes.
	subscriber := func(name string) *actor.PID {
		pid, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), name)
		require.NoError(t, err)
		return pid
	}
	acquire := func(sub *actor.PID, wait bool) (*lockv1.AcquireResponse, error) {
		return actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, 10*time.Second), sys.Root, grain, &lockv1.AcquireRequest{
			Name: "g", Wait: wait, Ttl: durationpb.New(15 * time.Second), RequestId: sub.Id, Subscriber: actors.SubscriberOf(sub),
		})
	}

	_, err = actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, 5*time.Second), sys.Root, grain, &lockv1.AcquireRequest{Name: "other", Wait: false})
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "a grain serves one name")

	a, b, c := subscriber("holder-a"), subscriber("waiter-b"), subscriber("waiter-c")
	first, err := acquire(a, false)
	require.NoError(t, err)
	type result struct {
		resp *lockv1.AcquireResponse
		err  error
	}
	bDone, cDone := make(chan result, 1), make(chan result, 1)
	go func() { r, err := acquire(b, true); bDone <- result{r, err} }()
	require.Never(t, func() bool { return len(bDone) > 0 }, 200*time.Millisecond, 20*time.Millisecond, "b waits")
	go func() { r, err := acquire(c, true); cDone <- result{r, err} }()
	require.Never(t, func() bool { return len(cDone) > 0 }, 200*time.Millisecond, 20*time.Millisecond, "c waits")

	// c goes away while waiting: its wait is withdrawn.
	require.NoError(t, sys.Root.StopFuture(c).Wait())
	var rc result
	require.Eventually(t, func() bool {
		select {
		case rc = <-cDone:
			return true
		default:
			return false
		}
	}, 5*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, rc.err, context.Canceled, "c's wait was withdrawn")

	// a, the holder, goes away: the lock passes to b at once, not after 15s.
	stopped := time.Now()
	require.NoError(t, sys.Root.StopFuture(a).Wait())
	var rb result
	select {
	case rb = <-bDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the lock did not pass to b after its holder stopped")
	}
	require.NoError(t, rb.err)
	assert.Less(t, time.Since(stopped), 2*time.Second)
	assert.Greater(t, rb.resp.GetLease().GetToken(), first.GetLease().GetToken())
	assert.Equal(t, int64(1), counted.handoffs.Load(), "the gone holder's lock was handed to b")
	assert.Equal(t, int64(0), counted.acquires.Load()+counted.releases.Load(), "in one write: no release, no acquire")

	_, err = actors.Request[*lockv1.ReleaseResponse](ctxTimeout(t, 5*time.Second), sys.Root, grain,
		&lockv1.ReleaseRequest{Name: "g", LeaseId: rb.resp.GetLease().GetLeaseId()})
	require.NoError(t, err)

	// Idle: the grain passivates and releases what it activated.
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle grain did not passivate")
	}
	// A request that reaches the mailbox in the instant between the release
	// and the grain's removal is dropped without a dead letter (protoactor
	// ignores messages to a stopped actor), so ask again until the dead
	// letter answers.
	require.Eventually(t, func() bool {
		_, err := actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, time.Second), sys.Root, grain, &lockv1.AcquireRequest{Name: "g"})
		return errors.Is(err, backends.ErrUnavailable)
	}, 10*time.Second, 10*time.Millisecond, "the passivated grain is gone")
}

// TestLockGrainActivationFailure: a grain that cannot activate answers
// every request with the activation error and keeps running.
func TestLockGrainActivationFailure(t *testing.T) {
	sys := newSystem(t)
	grain, err := sys.Root.SpawnNamed(components.NewLockGrainProps(components.LockGrainConfig{
		Activate: func(actor.Context) (components.LockActorConfig, string, func(), error) {
			return components.LockActorConfig{}, "", nil, backends.Unavailable("test", errors.New("member not ready"))
		},
	}), "grain-broken")
	require.NoError(t, err)
	for range 2 {
		_, err = actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, 5*time.Second), sys.Root, grain, &lockv1.AcquireRequest{Name: "g"})
		assert.ErrorIs(t, err, backends.ErrUnavailable)
	}
}
