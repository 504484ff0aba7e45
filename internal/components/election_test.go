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

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/internal/components"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	lockv1 "github.com/baton-go/baton/messages/lock/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

func TestElectionActor(t *testing.T) {
	forEachLockBackend(t, func(t *testing.T, env *lockEnv) {
		t.Run("LeaderResignObserve", func(t *testing.T) { testElectionHandover(t, env) })
		t.Run("CancelCampaign", func(t *testing.T) { testElectionCancel(t, env) })
		t.Run("SharedObservation", func(t *testing.T) { testElectionSharedObserve(t, env) })
		t.Run("BadInput", func(t *testing.T) { testElectionBadInput(t, env) })
		t.Run("StopAnswersParked", func(t *testing.T) { testElectionStop(t, env, false) })
		t.Run("RestartAnswersParked", func(t *testing.T) { testElectionStop(t, env, true) })
	})
}

// nextLeaderOf returns the next LeaderChanged at ib, skipping repeats of the
// last one seen.
func nextLeaderOf(t *testing.T, ib *lockInbox, last **electionv1.LeaderInfo) *electionv1.LeaderInfo {
	t.Helper()
	for {
		ev := lockInboxNext[*electionv1.LeaderChanged](t, ib, 10*time.Second)
		info := ev.GetLeader()
		if *last != nil && info.GetValue() == (*last).GetValue() && info.GetEpoch() == (*last).GetEpoch() {
			continue
		}
		*last = info
		return info
	}
}

// testElectionHandover: of 3 campaigners through one actor exactly one
// leads; each resign hands over to another; an observer sees every leader
// and finally "no leader".
func testElectionHandover(t *testing.T, env *lockEnv) {
	pid := env.spawnElectionActor(t, components.ElectionActorConfig{})
	ctx := lockCtx(t, 60*time.Second)
	root := env.sys.Root

	observer := env.newInbox(t, pid)
	_, err := actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{
		Election: "primary", SubscriptionId: "obs", Subscriber: actors.SubscriberOf(observer.pid),
	})
	require.NoError(t, err)

	candidates := env.newInbox(t, pid)
	for i := range 3 {
		root.RequestWithCustomSender(pid, &electionv1.CampaignRequest{
			Election: "primary", Value: fmt.Sprintf("c%d", i), RequestId: fmt.Sprintf("camp-%d", i),
		}, candidates.pid)
	}
	var (
		last   *electionv1.LeaderInfo
		seen   = map[string]bool{}
		prevEp uint64
	)
	for term := range 3 {
		won := lockInboxNext[*electionv1.CampaignResponse](t, candidates, 10*time.Second)
		require.NoError(t, won.GetStatus().Err(), "term %d", term)
		l := won.GetLeadership()
		assert.False(t, seen[l.GetValue()], "%s won twice", l.GetValue())
		seen[l.GetValue()] = true
		assert.Greater(t, l.GetEpoch(), prevEp, "epochs increase")
		prevEp = l.GetEpoch()
		candidates.quiet(t, 300*time.Millisecond) // a single leader

		leader, err := actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: "primary"})
		require.NoError(t, err)
		assert.Equal(t, l.GetValue(), leader.GetLeader().GetValue())
		assert.Equal(t, l.GetEpoch(), leader.GetLeader().GetEpoch())

		observed := nextLeaderOf(t, observer, &last)
		for observed.GetValue() == "" { // between two leaders there may be none for a moment
			observed = nextLeaderOf(t, observer, &last)
		}
		assert.Equal(t, l.GetValue(), observed.GetValue(), "observed leader of term %d", term)
		assert.Equal(t, l.GetEpoch(), observed.GetEpoch())

		_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{
			Election: "primary", LeadershipId: l.GetLeadershipId(),
		})
		require.NoError(t, err)
		_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{
			Election: "primary", LeadershipId: l.GetLeadershipId(),
		})
		assert.ErrorIs(t, err, backends.ErrNotHeld, "second resign")
	}
	assert.Len(t, seen, 3)
	gone := nextLeaderOf(t, observer, &last)
	assert.Empty(t, gone.GetValue(), "no leader after the last resign")
	assert.Zero(t, gone.GetEpoch())
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: "primary"})
	assert.ErrorIs(t, err, backends.ErrNotFound)

	_, err = actors.Request[*subscriptionv1.UnsubscribeResponse](ctx, root, pid, &subscriptionv1.UnsubscribeRequest{SubscriptionId: "obs"})
	require.NoError(t, err)
}

// testElectionCancel: a withdrawn campaign never leads later, and the next
// candidate is not queued behind it; a leadership whose session is lost is
// reported with LeadershipLost.
func testElectionCancel(t *testing.T, env *lockEnv) {
	pid := env.spawnElectionActor(t, components.ElectionActorConfig{})
	ctx := lockCtx(t, 60*time.Second)
	root := env.sys.Root
	ib := env.newInbox(t, pid)

	first, err := actors.Request[*electionv1.CampaignResponse](ctx, root, pid, &electionv1.CampaignRequest{
		Election: "cancel", Value: "a", RequestId: "a", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	root.RequestWithCustomSender(pid, &electionv1.CampaignRequest{Election: "cancel", Value: "b", RequestId: "b"}, ib.pid)
	ib.quiet(t, 200*time.Millisecond)
	_, err = actors.Request[*electionv1.CancelResponse](ctx, root, pid, &electionv1.CancelRequest{RequestId: "b"})
	require.NoError(t, err)
	resp := lockInboxNext[*electionv1.CampaignResponse](t, ib, 5*time.Second)
	assert.ErrorIs(t, resp.GetStatus().Err(), context.Canceled)

	_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{LeadershipId: first.GetLeadership().GetLeadershipId()})
	require.NoError(t, err)
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: "cancel"})
	assert.ErrorIs(t, err, backends.ErrNotFound, "a withdrawn candidate became leader")

	c, err := actors.Request[*electionv1.CampaignResponse](lockCtx(t, lockElectionTTL/2), root, pid, &electionv1.CampaignRequest{
		Election: "cancel", Value: "c", RequestId: "c",
	})
	require.NoError(t, err, "the next candidate waited behind a withdrawn one")
	_, err = actors.Request[*electionv1.CancelResponse](ctx, root, pid, &electionv1.CancelRequest{RequestId: "c"})
	require.NoError(t, err, "cancel after the grant resigns")
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: "cancel"})
	assert.ErrorIs(t, err, backends.ErrNotFound, "the grant of a cancelled campaign was kept")
	_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{LeadershipId: c.GetLeadership().GetLeadershipId()})
	assert.ErrorIs(t, err, backends.ErrNotHeld)
	ib.quiet(t, 100*time.Millisecond) // no LeadershipLost for what was resigned on request

	// A leader whose connector goes away loses its session: the actor
	// reports it.
	conn := env.newConn(t)
	require.NoError(t, conn.Connect(ctx))
	elector := newLockTestElector(t, env.backend, conn)
	lossy := env.spawnElectionActor(t, components.ElectionActorConfig{Elector: elector})
	won, err := actors.Request[*electionv1.CampaignResponse](ctx, root, lossy, &electionv1.CampaignRequest{
		Election: "lossy", Value: "x", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	require.NoError(t, conn.Disconnect(ctx))
	lost := lockInboxNext[*electionv1.LeadershipLost](t, ib, 3*lockElectionTTL)
	assert.Equal(t, won.GetLeadership().GetLeadershipId(), lost.GetLeadershipId())
	assert.Equal(t, statusv1.Code_CODE_NOT_HELD, lost.GetCause().GetCode())
}

// testElectionSharedObserve: several subscribers of one election share the
// actor's one observation; a late subscriber starts from the current
// leader; a subscriber that stops is dropped.
func testElectionSharedObserve(t *testing.T, env *lockEnv) {
	pid := env.spawnElectionActor(t, components.ElectionActorConfig{})
	ctx := lockCtx(t, 60*time.Second)
	root := env.sys.Root

	subs := make([]*lockInbox, 3)
	for i := range subs {
		subs[i] = env.newInbox(t, pid)
		_, err := actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{
			Election: "shared", SubscriptionId: fmt.Sprintf("s%d", i), Subscriber: actors.SubscriberOf(subs[i].pid),
		})
		require.NoError(t, err)
	}
	won, err := actors.Request[*electionv1.CampaignResponse](ctx, root, pid, &electionv1.CampaignRequest{Election: "shared", Value: "v1"})
	require.NoError(t, err)
	for i, s := range subs {
		var last *electionv1.LeaderInfo
		ev := nextLeaderOf(t, s, &last)
		assert.Equal(t, "v1", ev.GetValue(), "subscriber %d", i)
	}
	late := env.newInbox(t, pid)
	_, err = actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{
		Election: "shared", SubscriptionId: "late", Subscriber: actors.SubscriberOf(late.pid),
	})
	require.NoError(t, err)
	first := lockInboxNext[*electionv1.LeaderChanged](t, late, 5*time.Second)
	assert.Equal(t, "v1", first.GetLeader().GetValue(), "a late subscriber starts from the current leader")
	assert.Equal(t, uint64(1), first.GetSeq())

	// A subscriber that stops is removed; the others go on.
	require.NoError(t, root.StopFuture(subs[0].pid).Wait())
	_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{LeadershipId: won.GetLeadership().GetLeadershipId()})
	require.NoError(t, err)
	for _, s := range append(subs[1:], late) {
		ev := lockInboxNext[*electionv1.LeaderChanged](t, s, 10*time.Second)
		assert.Empty(t, ev.GetLeader().GetValue())
	}
}

// newLockTestElector builds an elector of backend on its own connector.
func newLockTestElector(t *testing.T, backend string, conn backends.Connector) backends.Elector {
	t.Helper()
	opts := backends.ElectorOptions{Namespace: backends.Namespace{Env: "test"}, TTL: lockElectionTTL}
	var (
		e   backends.Elector
		err error
	)
	switch c := conn.(type) {
	case *redis.Connector:
		e, err = redis.NewElector(c, opts)
	case *etcd.Connector:
		e, err = etcd.NewElector(c, opts)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func testElectionBadInput(t *testing.T, env *lockEnv) {
	pid := env.spawnElectionActor(t, components.ElectionActorConfig{})
	ctx := lockCtx(t, 30*time.Second)
	root := env.sys.Root
	for _, name := range []string{"", "a/b", "a\x00b"} {
		_, err := actors.Request[*electionv1.CampaignResponse](ctx, root, pid, &electionv1.CampaignRequest{Election: name})
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "campaign %q", name)
		_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, pid, &electionv1.LeaderRequest{Election: name})
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "leader %q", name)
		_, err = actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{Election: name, SubscriptionId: "x", Subscriber: actors.SubscriberOf(pid)})
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "observe %q", name)
	}
	_, err := actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{Election: "ok", Subscriber: actors.SubscriberOf(pid)})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "observe without subscription id")
	_, err = actors.Request[*electionv1.ResignResponse](ctx, root, pid, &electionv1.ResignRequest{Election: "ok", LeadershipId: "nope"})
	assert.ErrorIs(t, err, backends.ErrNotHeld)

	_, err = actors.Request[*lockv1.AcquireResponse](ctx, root, pid, &lockv1.AcquireRequest{Name: "ok"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "lock requests go to the lock actor")

	// Without an elector, election requests are not supported.
	noElector := env.spawnElectionActorAs(t, components.ElectionActorConfig{Backend: env.backend})
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, root, noElector, &electionv1.LeaderRequest{Election: "ok"})
	assert.ErrorIs(t, err, backends.ErrNotSupported)
}

// spawnElectionActor starts an election actor on env's elector; it is
// stopped (and so resigns what it holds) when the test ends.
func (env *lockEnv) spawnElectionActor(t *testing.T, cfg components.ElectionActorConfig) *actor.PID {
	t.Helper()
	if cfg.Elector == nil {
		cfg.Elector = env.elector
	}
	cfg.Backend = env.backend
	return env.spawnElectionActorAs(t, cfg)
}

// spawnElectionActorAs starts an election actor with cfg as given.
func (env *lockEnv) spawnElectionActorAs(t *testing.T, cfg components.ElectionActorConfig) *actor.PID {
	t.Helper()
	pid, err := env.sys.Root.SpawnNamed(components.NewElectionActorProps(cfg), fmt.Sprintf("election-%d", lockActorSeq.Add(1)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.sys.Root.StopFuture(pid).Wait() })
	return pid
}

// testElectionStop: stopping (or restarting) the actor answers a parked
// campaign CODE_CLOSED (CODE_UNAVAILABLE), resigns the leadership it holds
// and tells its holder with LeadershipLost, and ends the observations with
// subscriptionv1.Ended. A restarted actor serves again.
func testElectionStop(t *testing.T, env *lockEnv, restart bool) {
	pid := env.spawnElectionActor(t, components.ElectionActorConfig{})
	ctx := lockCtx(t, 60*time.Second)
	root := env.sys.Root
	ib := env.newInbox(t, pid)
	election := "stop"
	if restart {
		election = "restart"
	}

	won, err := actors.Request[*electionv1.CampaignResponse](ctx, root, pid, &electionv1.CampaignRequest{
		Election: election, Value: "a", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	root.RequestWithCustomSender(pid, &electionv1.CampaignRequest{Election: election, Value: "b", RequestId: "b"}, ib.pid)
	_, err = actors.Request[*electionv1.ObserveResponse](ctx, root, pid, &electionv1.ObserveRequest{
		Election: election, SubscriptionId: "o", Subscriber: actors.SubscriberOf(ib.pid),
	})
	require.NoError(t, err)
	first := lockInboxNext[*electionv1.LeaderChanged](t, ib, 10*time.Second)
	require.Equal(t, "a", first.GetLeader().GetValue())
	ib.quiet(t, 200*time.Millisecond) // b is parked

	wantAnswer, wantEnded := statusv1.Code_CODE_CLOSED, statusv1.Code_CODE_CLOSED
	if restart {
		wantAnswer, wantEnded = statusv1.Code_CODE_UNAVAILABLE, statusv1.Code_CODE_UNAVAILABLE
		proc, _ := env.sys.ProcessRegistry.Get(pid)
		proc.SendSystemMessage(pid, &actor.Restart{})
	} else {
		require.NoError(t, root.StopFuture(pid).Wait())
	}
	var (
		answer *electionv1.CampaignResponse
		lost   *electionv1.LeadershipLost
		ended  *subscriptionv1.Ended
	)
	for answer == nil || lost == nil || ended == nil {
		switch m := lockInboxNext[any](t, ib, 10*time.Second).(type) {
		case *electionv1.CampaignResponse:
			answer = m
		case *electionv1.LeadershipLost:
			lost = m
		case *subscriptionv1.Ended:
			ended = m
		}
	}
	assert.Equal(t, wantAnswer, answer.GetStatus().GetCode(), "the parked campaign")
	assert.Equal(t, won.GetLeadership().GetLeadershipId(), lost.GetLeadershipId())
	assert.Equal(t, statusv1.Code_CODE_CLOSED, lost.GetCause().GetCode())
	assert.Equal(t, "o", ended.GetSubscriptionId())
	assert.Equal(t, wantEnded, ended.GetStatus().GetCode())

	require.Eventually(t, func() bool {
		_, err := env.elector.Leader(ctx, election)
		return errors.Is(err, backends.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond, "the leadership was not resigned, or the parked campaign won")
	if restart {
		again, err := actors.Request[*electionv1.CampaignResponse](ctx, root, pid, &electionv1.CampaignRequest{Election: election, Value: "c"})
		require.NoError(t, err, "the restarted actor serves")
		assert.Greater(t, again.GetLeadership().GetEpoch(), won.GetLeadership().GetEpoch())
	}
}

// TestElectionActorBackendGate: while the connector supervisor reports the
// backend down, election requests fail fast with UNAVAILABLE; when it is
// back they are served again, with no restart of the election actor.
func TestElectionActorBackendGate(t *testing.T) {
	forEachLockBackend(t, func(t *testing.T, env *lockEnv) {
		conn := env.newConn(t)
		sup, err := env.sys.Root.SpawnNamed(components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
			Connectors: []backends.Connector{conn}, HealthInterval: 100 * time.Millisecond,
			ConnectTimeout: time.Second,
			Backoff:        components.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		}), fmt.Sprintf("supervisor-%d", lockActorSeq.Add(1)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = env.sys.Root.StopFuture(sup).Wait() })
		elector := newLockTestElector(t, env.backend, conn)
		pid := env.spawnElectionActor(t, components.ElectionActorConfig{Elector: elector, Supervisor: sup})
		ctx := lockCtx(t, 60*time.Second)
		leader := func() error {
			_, err := actors.Request[*electionv1.LeaderResponse](ctx, env.sys.Root, pid, &electionv1.LeaderRequest{Election: "gated"})
			return err
		}

		require.Eventually(t, func() bool { return errors.Is(leader(), backends.ErrNotFound) },
			10*time.Second, 50*time.Millisecond, "never served while up")

		env.stop()
		require.Eventually(t, func() bool {
			start := time.Now()
			return errors.Is(leader(), backends.ErrUnavailable) && time.Since(start) < 100*time.Millisecond
		}, 10*time.Second, 50*time.Millisecond, "requests do not fail fast while the backend is down")

		env.start()
		require.Eventually(t, func() bool { return errors.Is(leader(), backends.ErrNotFound) },
			20*time.Second, 100*time.Millisecond, "not served again after the backend came back")
	})
}
