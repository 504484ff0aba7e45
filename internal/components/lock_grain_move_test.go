package components_test

import (
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
	"github.com/baton-go/baton/internal/components"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// newTestLocker returns a Locker of the server's backend, closed with the
// test.
func newTestLocker(t *testing.T, srv *server) backends.Locker {
	t.Helper()
	var (
		l   backends.Locker
		err error
	)
	opts := backends.LockerOptions{Namespace: testNamespace(t)}
	if srv.backend == backends.BackendRedis {
		l, err = redis.NewLocker(srv.conn.(*redis.Connector), opts)
	} else {
		l, err = etcd.NewLocker(srv.conn.(*etcd.Connector), opts)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestLockGrainMoveKeepsLease: a grain that stops (its name moved to
// another node) gives up nothing and tells nobody; the lock stays held
// until the holder, at the grain's next activation, adopts the lease and
// releases it. A holder whose connection merely broke keeps its lease.
func TestLockGrainMoveKeepsLease(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			srv := startServer(t, backend)
			sys := newSystem(t)
			outsider := newTestLocker(t, srv)
			grainOn := func(id string, l backends.Locker) *actor.PID {
				pid, err := sys.Root.SpawnNamed(components.NewLockGrainProps(components.LockGrainConfig{
					Activate: func(actor.Context) (components.LockActorConfig, string, func(), error) {
						return components.LockActorConfig{Locker: l, Backend: backend}, "m", func() {}, nil
					},
				}), id)
				require.NoError(t, err)
				return pid
			}
			lost := make(chan *lockv1.LeaseLost, 8)
			holder, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
				if m, ok := c.Message().(*lockv1.LeaseLost); ok {
					lost <- m
				}
			}), "holder")
			require.NoError(t, err)
			requireHeld := func(msg string) {
				t.Helper()
				_, err := outsider.TryAcquire(ctxTimeout(t, 5*time.Second), "m", backends.LockOptions{})
				require.ErrorIs(t, err, backends.ErrNotObtained, msg)
			}

			first := grainOn("grain-1", newTestLocker(t, srv))
			resp, err := actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, 10*time.Second), sys.Root, first, &lockv1.AcquireRequest{
				Name: "m", Ttl: durationpb.New(30 * time.Second), Subscriber: actors.SubscriberOf(holder),
			})
			require.NoError(t, err)
			granted := resp.GetLease()
			require.NotEmpty(t, granted.GetHandle(), "a grant carries the backend's record")
			require.NotNil(t, granted.GetTtlLeft())
			assert.LessOrEqual(t, granted.GetTtlLeft().AsDuration(), 30*time.Second)

			// The connection to the holder breaks: it keeps its lease.
			sys.Root.Send(first, &actor.Terminated{Who: holder, Why: actor.TerminatedReason_AddressTerminated})
			requireHeld("a holder that is only cut off keeps its lock")

			// A waiter queues; the grain is reset (its process stalled):
			// the waiter is answered CLOSED, the lease stays held and
			// unknown to the grain until its holder brings it back.
			waiter := make(chan error, 1)
			go func() {
				_, err := actors.Request[*lockv1.AcquireResponse](ctxTimeout(t, 10*time.Second), sys.Root, first, &lockv1.AcquireRequest{
					Name: "m", Wait: true, Ttl: durationpb.New(30 * time.Second), RequestId: "w",
				})
				waiter <- err
			}()
			require.Never(t, func() bool { return len(waiter) > 0 }, 200*time.Millisecond, 20*time.Millisecond, "the waiter waits")
			sys.Root.Send(first, &components.LockGrainReset{})
			select {
			case err := <-waiter:
				require.ErrorIs(t, err, backends.ErrClosed, "a reset grain answers its waiters CLOSED")
			case <-time.After(10 * time.Second):
				t.Fatal("the waiter was not answered after the reset")
			}
			requireHeld("a reset grain leaves the lock held")
			_, err = actors.Request[*lockv1.ReleaseResponse](ctxTimeout(t, 10*time.Second), sys.Root, first, &lockv1.ReleaseRequest{
				Name: "m", LeaseId: granted.GetLeaseId(),
			})
			require.ErrorIs(t, err, backends.ErrNotHeld, "a reset grain does not know the lease")
			requireHeld("a release by an unknown lease id frees nothing")
			back, err := actors.Request[*lockv1.AdoptResponse](ctxTimeout(t, 10*time.Second), sys.Root, first, &lockv1.AdoptRequest{
				Lease: granted, Subscriber: actors.SubscriberOf(holder),
			})
			require.NoError(t, err, "the holder brings its lease back")
			granted.LeaseId = back.GetLease().GetLeaseId()

			require.NoError(t, sys.Root.StopFuture(first).Wait())
			requireHeld("a grain that stops leaves the lock held")
			assert.Empty(t, lost, "nobody is told of a loss: nothing was lost")

			second := grainOn("grain-2", newTestLocker(t, srv))
			granted.LeaseId = "old"
			adopted, err := actors.Request[*lockv1.AdoptResponse](ctxTimeout(t, 10*time.Second), sys.Root, second, &lockv1.AdoptRequest{
				Lease: granted, Subscriber: actors.SubscriberOf(holder),
			})
			require.NoError(t, err)
			assert.Equal(t, granted.GetToken(), adopted.GetLease().GetToken())
			assert.NotEqual(t, granted.GetLeaseId(), adopted.GetLease().GetLeaseId(), "a new lease id at the new place")
			requireHeld("adopted")

			// Adopting again names the same lease.
			again, err := actors.Request[*lockv1.AdoptResponse](ctxTimeout(t, 10*time.Second), sys.Root, second, &lockv1.AdoptRequest{
				Lease: granted, Subscriber: actors.SubscriberOf(holder),
			})
			require.NoError(t, err)
			assert.Equal(t, adopted.GetLease().GetLeaseId(), again.GetLease().GetLeaseId())

			_, err = actors.Request[*lockv1.ReleaseResponse](ctxTimeout(t, 10*time.Second), sys.Root, second, &lockv1.ReleaseRequest{
				Name: "m", LeaseId: adopted.GetLease().GetLeaseId(),
			})
			require.NoError(t, err)
			next, err := outsider.TryAcquire(ctxTimeout(t, 5*time.Second), "m", backends.LockOptions{})
			require.NoError(t, err, "released through the adopting grain")
			assert.Greater(t, next.Token(), granted.GetToken())
			require.NoError(t, next.Release(ctxTimeout(t, 5*time.Second)))

			_, err = actors.Request[*lockv1.AdoptResponse](ctxTimeout(t, 10*time.Second), sys.Root, grainOn("grain-3", newTestLocker(t, srv)), &lockv1.AdoptRequest{
				Lease: granted, Subscriber: actors.SubscriberOf(holder),
			})
			require.ErrorIs(t, err, backends.ErrNotHeld, "a released lease cannot be adopted")
			bad := &lockv1.Lease{Name: "m", Owner: "x", Token: 1, Ttl: durationpb.New(time.Second)}
			_, err = actors.Request[*lockv1.AdoptResponse](ctxTimeout(t, 10*time.Second), sys.Root, second, &lockv1.AdoptRequest{Lease: bad})
			require.ErrorIs(t, err, backends.ErrInvalidArgument, "a lease without handle")
		})
	}
}
