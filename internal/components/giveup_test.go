package components_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/internal/components"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// gatedEnv starts a connector supervisor over a fresh connector of env's
// server, so the actors built on it see the backend go and come back.
func gatedEnv(t *testing.T, env *lockEnv) (backends.Connector, *actor.PID) {
	t.Helper()
	conn := env.newConn(t)
	sup, err := env.sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
		Connectors: []backends.Connector{conn}, HealthInterval: 100 * time.Millisecond,
		ConnectTimeout: time.Second,
		Backoff:        components.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	}), fmt.Sprintf("supervisor-%d", lockActorSeq.Add(1)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.sys.Root.StopFuture(sup).Wait() })
	return conn, sup
}

// forEachDurableLockBackend is forEachLockBackend with a Redis that keeps
// its data across a restart (AOF), as etcd does: a lease that survives the
// outage is what these tests are about.
func forEachDurableLockBackend(t *testing.T, f func(t *testing.T, env *lockEnv)) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) { f(t, newLockEnv(t, backend, harness.WithRedisAOF())) })
	}
}

// TestLockActorReleaseRefusedIsRetried: a Release answered with
// ErrUnavailable (the backend down) must not leave an auto-renewed lease
// held for good when its holder walks away: the actor keeps releasing it
// in the background, the lock is free again soon after the backend is
// back, and the holder is told its lease is over.
func TestLockActorReleaseRefusedIsRetried(t *testing.T) {
	forEachDurableLockBackend(t, func(t *testing.T, env *lockEnv) {
		conn, sup := gatedEnv(t, env)
		locker := newLockerOn(t, conn, backends.Namespace{Env: "giveup"})
		pid := env.spawnLockActor(t, components.LockActorConfig{Locker: locker, Supervisor: sup})
		ib := env.newInbox(t, pid)
		ctx := lockCtx(t, 90*time.Second)

		var held *lockv1.Lease
		require.Eventually(t, func() bool {
			resp, err := actors.Request[*lockv1.AcquireResponse](ctx, env.sys.Root, pid, &lockv1.AcquireRequest{
				Name: "walked-away", Ttl: durationpb.New(3 * time.Second), AutoRenew: true,
				Subscriber: actors.SubscriberOf(ib.pid),
			})
			held = resp.GetLease()
			return err == nil
		}, 10*time.Second, 50*time.Millisecond, "never granted while up")

		env.stop()
		require.Eventually(t, func() bool {
			return errors.Is(releaseLock(ctx, env, pid, held), backends.ErrUnavailable)
		}, 10*time.Second, 50*time.Millisecond, "release is not refused while the backend is down")
		env.start()

		// The holder never calls Release again. Without the background
		// release the auto-renewed lease would keep the lock forever.
		lost := lockInboxNext[*lockv1.LeaseLost](t, ib, 30*time.Second)
		assert.Equal(t, held.GetLeaseId(), lost.GetLeaseId())
		require.Eventually(t, func() bool {
			l, err := tryLock(ctx, env, pid, "walked-away", "")
			return err == nil && releaseLock(ctx, env, pid, l) == nil
		}, 20*time.Second, 100*time.Millisecond, "the lock stayed held after the backend came back")
		assert.ErrorIs(t, releaseLock(ctx, env, pid, held), backends.ErrNotHeld)
	})
}

// TestElectionActorResignRefusedIsRetried: the same for a leader whose
// Resign was refused while the backend was down.
func TestElectionActorResignRefusedIsRetried(t *testing.T) {
	forEachDurableLockBackend(t, func(t *testing.T, env *lockEnv) {
		_, sup := gatedEnv(t, env)
		pid, err := env.sys.Root.SpawnNamed(components.NewElectionActorProps(components.ElectionActorConfig{
			Elector: env.elector, Backend: env.backend, Supervisor: sup,
		}), fmt.Sprintf("election-%d", lockActorSeq.Add(1)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = env.sys.Root.StopFuture(pid).Wait() })
		ib := env.newInbox(t, pid)
		ctx := lockCtx(t, 90*time.Second)

		var won *electionv1.Leadership
		require.Eventually(t, func() bool {
			resp, err := actors.Request[*electionv1.CampaignResponse](ctx, env.sys.Root, pid, &electionv1.CampaignRequest{
				Election: "walked-away", Value: "a", Subscriber: actors.SubscriberOf(ib.pid),
			})
			won = resp.GetLeadership()
			return err == nil
		}, 10*time.Second, 50*time.Millisecond, "never won while up")

		resign := func(l *electionv1.Leadership) error {
			_, err := actors.Request[*electionv1.ResignResponse](ctx, env.sys.Root, pid, &electionv1.ResignRequest{
				Election: l.GetElection(), LeadershipId: l.GetLeadershipId(),
			})
			return err
		}
		env.stop()
		require.Eventually(t, func() bool {
			return errors.Is(resign(won), backends.ErrUnavailable)
		}, 10*time.Second, 50*time.Millisecond, "resign is not refused while the backend is down")
		env.start()

		lost := lockInboxNext[*electionv1.LeadershipLost](t, ib, 30*time.Second)
		assert.Equal(t, won.GetLeadershipId(), lost.GetLeadershipId())
		require.Eventually(t, func() bool {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			resp, err := actors.Request[*electionv1.CampaignResponse](cctx, env.sys.Root, pid, &electionv1.CampaignRequest{
				Election: "walked-away", Value: "b",
			})
			return err == nil && resign(resp.GetLeadership()) == nil
		}, 20*time.Second, 100*time.Millisecond, "the election stayed won after the backend came back")
	})
}
