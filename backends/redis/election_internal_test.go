package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func kitElector(t testing.TB, c *Connector, ns backends.Namespace, ttl time.Duration) *electionStore {
	t.Helper()
	e, err := newElectionStore(c, backends.ElectorOptions{Namespace: ns, TTL: ttl})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func kitCampaigning(e *electionStore, election string) int {
	_, _, ch := e.electKeys(election)
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	return len(e.hub.waiters[ch])
}

// kitNext receives from an Observe channel within d.
func kitNext(t *testing.T, ch <-chan backends.LeaderInfo, d time.Duration) backends.LeaderInfo {
	t.Helper()
	select {
	case info, ok := <-ch:
		require.True(t, ok, "observe channel closed")
		return info
	case <-time.After(d):
		t.Fatal("no leader change observed")
	}
	return backends.LeaderInfo{}
}

func TestElectionCampaignResignObserve(t *testing.T) {
	r, c1 := kitRedis(t)
	c2 := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	e1, e2 := kitElector(t, c1, ns, 2*time.Second), kitElector(t, c2, ns, 2*time.Second)
	ctx := t.Context()

	_, err := e1.Leader(ctx, "svc")
	require.ErrorIs(t, err, backends.ErrNotFound)

	octx, stop := context.WithCancel(ctx)
	obs, err := e2.Observe(octx, "svc")
	require.NoError(t, err)

	l1, err := e1.Campaign(ctx, "svc", "node-1|with|pipes")
	require.NoError(t, err)
	assert.Equal(t, "svc", l1.Election())
	assert.Equal(t, "node-1|with|pipes", l1.Value())
	info, err := e2.Leader(ctx, "svc")
	require.NoError(t, err)
	assert.Equal(t, backends.LeaderInfo{Election: "svc", Value: "node-1|with|pipes", Epoch: l1.Epoch()}, info)
	assert.Equal(t, info, kitNext(t, obs, 2*time.Second))

	got := make(chan backends.Leadership, 1)
	go func() {
		l2, err := e2.Campaign(ctx, "svc", "node-2")
		assert.NoError(t, err)
		got <- l2
	}()
	require.Eventually(t, func() bool { return kitCampaigning(e2, "svc") >= 1 }, 2*time.Second, time.Millisecond)

	resigned := time.Now()
	require.NoError(t, l1.Resign(ctx))
	assertClosed(t, l1.Done())
	require.ErrorIs(t, l1.Resign(ctx), backends.ErrNotHeld)
	var l2 backends.Leadership
	select {
	case l2 = <-got:
		t.Logf("next candidate led %v after resign", time.Since(resigned))
	case <-time.After(2 * time.Second):
		t.Fatal("candidate not elected after resign")
	}
	require.NotNil(t, l2)
	assert.Greater(t, l2.Epoch(), l1.Epoch())

	// The observer sees the new leader (possibly after a "no leader").
	for {
		info := kitNext(t, obs, 2*time.Second)
		if info.Value == "node-2" {
			assert.Equal(t, l2.Epoch(), info.Epoch)
			break
		}
		assert.Equal(t, backends.LeaderInfo{Election: "svc"}, info)
	}
	require.NoError(t, l2.Resign(ctx))
	assert.Equal(t, backends.LeaderInfo{Election: "svc"}, kitNext(t, obs, 2*time.Second), "no leader")

	stop()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-obs:
			return !ok
		default:
			return false
		}
	}, 2*time.Second, time.Millisecond, "observe channel closes with its ctx")
}

// TestElectionHandoverAfterDisconnect: the leader's connector goes away
// (renewals stop); a candidate on another connector takes over within about
// one TTL and the old leader's Done closes.
func TestElectionHandoverAfterDisconnect(t *testing.T) {
	r, c2 := kitRedis(t)
	c1 := kitConnect(t, Config{URL: r.URL()})
	ns := kitNS(t, "dev")
	const ttl = time.Second
	e1, e2 := kitElector(t, c1, ns, ttl), kitElector(t, c2, ns, ttl)
	ctx := t.Context()

	l1, err := e1.Campaign(ctx, "db", "primary-1")
	require.NoError(t, err)
	obs, err := e2.Observe(ctx, "db")
	require.NoError(t, err)
	assert.Equal(t, "primary-1", kitNext(t, obs, time.Second).Value)

	got := make(chan backends.Leadership, 1)
	go func() {
		l2, err := e2.Campaign(ctx, "db", "primary-2")
		assert.NoError(t, err)
		got <- l2
	}()
	require.Eventually(t, func() bool { return kitCampaigning(e2, "db") >= 2 }, 2*time.Second, time.Millisecond)
	// Renewals have been working: still leader after more than a TTL.
	assert.Never(t, func() bool {
		select {
		case <-l1.Done():
			return true
		default:
			return false
		}
	}, ttl+200*time.Millisecond, 50*time.Millisecond)

	require.NoError(t, c1.Disconnect(ctx))
	crashed := time.Now()
	var l2 backends.Leadership
	select {
	case l2 = <-got:
	case <-time.After(3 * ttl):
		t.Fatal("no take-over")
	}
	took := time.Since(crashed)
	t.Logf("take-over %v after the leader's connector was disconnected (ttl %v)", took, ttl)
	assert.Less(t, took, ttl+300*time.Millisecond)
	assert.Greater(t, l2.Epoch(), l1.Epoch())
	assertClosed(t, l1.Done())

	for {
		info := kitNext(t, obs, 2*ttl)
		if info.Value == "primary-2" {
			assert.Equal(t, l2.Epoch(), info.Epoch)
			break
		}
	}
	require.NoError(t, l2.Resign(ctx))
}

func TestElectionLossAndClose(t *testing.T) {
	_, c := kitRedis(t)
	ns := kitNS(t, "dev")
	e, err := newElectionStore(c, backends.ElectorOptions{Namespace: ns, TTL: 300 * time.Millisecond})
	require.NoError(t, err)
	ctx := t.Context()

	l1, err := e.Campaign(ctx, "a", "x")
	require.NoError(t, err)
	// Someone else deletes the leader key: the next renewal notices.
	leaderKey, _, _ := e.electKeys("a")
	require.NoError(t, c.Client().Del(ctx, leaderKey).Err())
	select {
	case <-l1.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("loss not noticed")
	}
	assert.ErrorIs(t, l1.Resign(ctx), backends.ErrNotHeld)

	// Campaign context ends while another candidate leads.
	l2, err := e.Campaign(ctx, "a", "y")
	require.NoError(t, err)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = e.Campaign(cctx, "a", "z")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 0, kitCampaigning(e, "a"), "no stale candidate")

	obs, err := e.Observe(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "y", kitNext(t, obs, time.Second).Value)
	// A campaign blocked behind another elector's leader.
	_, err = kitElector(t, c, ns, time.Minute).Campaign(ctx, "b", "holder")
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := e.Campaign(ctx, "b", "w")
		errc <- err
	}()
	require.Eventually(t, func() bool { return kitCampaigning(e, "b") == 1 }, 2*time.Second, time.Millisecond)

	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	assertClosed(t, l2.Done())
	_, ok := <-obs
	assert.False(t, ok, "observe channel closed by Close")
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, backends.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("campaign not woken by Close")
	}
	_, err = e.Campaign(ctx, "a", "again")
	assert.ErrorIs(t, err, backends.ErrClosed)
	_, err = e.Leader(ctx, "a")
	assert.ErrorIs(t, err, backends.ErrClosed)

	// Close resigned: "a" has no leader now.
	e3 := kitElector(t, c, ns, time.Minute)
	_, err = e3.Leader(ctx, "a")
	assert.ErrorIs(t, err, backends.ErrNotFound)

	_, err = newElectionStore(c, backends.ElectorOptions{Namespace: ns, TTL: -time.Second})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = e3.Campaign(ctx, "", "v")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

func TestElectionEpochsIncrease(t *testing.T) {
	addrs := kitCluster(t)
	c := kitConnect(t, Config{Addrs: addrs})
	e := kitElector(t, c, kitNS(t, "dev"), time.Minute)
	ctx := t.Context()
	for _, name := range []string{"one", "}two", "th{r}ee"} {
		var last uint64
		for range 5 {
			l, err := e.Campaign(ctx, name, "v")
			require.NoError(t, err, name)
			assert.Greater(t, l.Epoch(), last)
			last = l.Epoch()
			info, err := e.Leader(ctx, name)
			require.NoError(t, err)
			assert.Equal(t, last, info.Epoch)
			require.NoError(t, l.Resign(ctx))
		}
	}
}
