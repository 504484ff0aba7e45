package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestElector(t *testing.T, conn *Connector, ns backends.Namespace, ttl time.Duration) *electionStore {
	t.Helper()
	e, err := newElectionStore(conn, backends.ElectorOptions{Namespace: ns, TTL: ttl})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func nextInfo(t *testing.T, ch <-chan backends.LeaderInfo, d time.Duration) backends.LeaderInfo {
	t.Helper()
	select {
	case info, ok := <-ch:
		require.True(t, ok, "observe channel closed")
		return info
	case <-time.After(d):
		t.Fatalf("no leader change within %v", d)
		return backends.LeaderInfo{}
	}
}

// TestElectionHandoverOnDisconnect: the leader's process "crashes" (its
// connector is disconnected): its Done closes at once, and the waiting
// candidate takes over when the leader's session TTL runs out.
func TestElectionHandoverOnDisconnect(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	ctx := t.Context()
	leaderConn := testConn(t, srv)
	a := newTestElector(t, leaderConn, ns, 2*time.Second)
	b := newTestElector(t, testConn(t, srv), ns, 2*time.Second)
	obs := newTestElector(t, testConn(t, srv), ns, 0)

	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	changes, err := obs.Observe(octx, "e")
	require.NoError(t, err)

	la, err := a.Campaign(ctx, "e", "node-a")
	require.NoError(t, err)
	assert.Equal(t, backends.LeaderInfo{Election: "e", Value: "node-a", Epoch: la.Epoch()}, nextInfo(t, changes, 2*time.Second))

	type campaigned struct {
		l   backends.Leadership
		err error
	}
	ch := make(chan campaigned, 1)
	go func() {
		l, err := b.Campaign(ctx, "e", "node-b")
		ch <- campaigned{l, err}
	}()
	require.Eventually(t, func() bool {
		return len(rawKeys(t, raw, ns.Prefix(backends.ComponentElection, "e"))) == 2
	}, 5*time.Second, 2*time.Millisecond)

	require.NoError(t, leaderConn.Disconnect(ctx))
	require.Eventually(t, func() bool { return isClosed(la.Done()) }, time.Second, 5*time.Millisecond,
		"a leader whose connector is gone is no longer leader")
	start := time.Now()
	var got campaigned
	select {
	case got = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("candidate did not take over")
	}
	require.NoError(t, got.err)
	t.Logf("handover after the leader's connector was disconnected (ttl 2s): %v", time.Since(start))
	assert.Greater(t, got.l.Epoch(), la.Epoch())

	// Observers see the new leader (possibly after a "no leader").
	info := nextInfo(t, changes, 5*time.Second)
	if info.Epoch == 0 {
		info = nextInfo(t, changes, 5*time.Second)
	}
	assert.Equal(t, backends.LeaderInfo{Election: "e", Value: "node-b", Epoch: got.l.Epoch()}, info)
	cur, err := obs.Leader(ctx, "e")
	require.NoError(t, err)
	assert.Equal(t, info, cur)
	require.NoError(t, got.l.Resign(ctx))
	require.ErrorIs(t, got.l.Resign(ctx), backends.ErrNotHeld)
}

func TestElectionObserveNoLeader(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	ns := testNS()
	ctx := t.Context()
	e := newTestElector(t, testConn(t, srv), ns, 0)

	_, err := e.Leader(ctx, "o")
	require.ErrorIs(t, err, backends.ErrNotFound)

	octx, ocancel := context.WithCancel(ctx)
	changes, err := e.Observe(octx, "o")
	require.NoError(t, err)
	require.Never(t, func() bool { return len(changes) > 0 }, 100*time.Millisecond, 10*time.Millisecond)

	l1, err := e.Campaign(ctx, "o", "one")
	require.NoError(t, err)
	assert.Equal(t, "one", nextInfo(t, changes, 2*time.Second).Value)
	require.NoError(t, l1.Resign(ctx))
	assert.True(t, isClosed(l1.Done()))
	assert.Equal(t, backends.LeaderInfo{Election: "o"}, nextInfo(t, changes, 2*time.Second), "no leader")
	l2, err := e.Campaign(ctx, "o", "two")
	require.NoError(t, err)
	info := nextInfo(t, changes, 2*time.Second)
	assert.Equal(t, "two", info.Value)
	assert.Greater(t, info.Epoch, l1.Epoch())

	ocancel()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-changes:
			return !ok
		default:
			return false
		}
	}, 2*time.Second, 5*time.Millisecond, "channel closes when ctx ends")
	require.NoError(t, l2.Resign(ctx))
}

func TestElectorClose(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	raw := rawClient(t, srv)
	ns := testNS()
	ctx := t.Context()
	e := newTestElector(t, testConn(t, srv), ns, 0)
	other := newTestElector(t, testConn(t, srv), ns, 0)

	lead, err := e.Campaign(ctx, "c", "me")
	require.NoError(t, err)
	theirs, err := other.Campaign(ctx, "c2", "them")
	require.NoError(t, err)
	waiting := make(chan error, 1)
	go func() {
		_, err := e.Campaign(ctx, "c2", "me too")
		waiting <- err
	}()
	changes, err := e.Observe(ctx, "c")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return len(rawKeys(t, raw, ns.Prefix(backends.ComponentElection, "c2"))) == 2
	}, 5*time.Second, 2*time.Millisecond)

	require.NoError(t, e.Close())
	require.ErrorIs(t, <-waiting, backends.ErrClosed)
	assert.True(t, isClosed(lead.Done()))
	for range changes { //nolint:revive // drain until closed
	}
	assert.Empty(t, rawKeys(t, raw, ns.Prefix(backends.ComponentElection, "c")), "leadership resigned")
	assert.Len(t, rawKeys(t, raw, ns.Prefix(backends.ComponentElection, "c2")), 1, "waiting candidate removed")
	_, err = e.Campaign(ctx, "c", "again")
	require.ErrorIs(t, err, backends.ErrClosed)
	require.ErrorIs(t, e.Close(), backends.ErrClosed)
	require.NoError(t, theirs.Resign(ctx))
}
