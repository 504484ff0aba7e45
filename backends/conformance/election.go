package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// RunElection runs the election cases against target.NewElector. Each
// elector stands for a separate process (its own connector).
func RunElection(t *testing.T, target Target) {
	t.Helper()
	require.NotNil(t, target.NewElector, "conformance: %s has no elector factory", target.Name)
	s := electionSuite{target: target}
	runCases(t, target, backends.ComponentElection, []testCase{
		{"single-leader", true, s.singleLeader},
		{"resign-handover", true, s.resignHandover},
		{"crash-handover", true, s.crashHandover},
		{"epochs-increase", true, s.epochsIncrease},
		{"observe", true, s.observe},
		{"leader-not-found", true, s.leaderNotFound},
		{"campaign-ctx-cancel", true, s.campaignCtxCancel},
		{"invalid-args", true, s.invalidArgs},
	})
}

type electionSuite struct{ target Target }

// electorTTL is the session TTL of every elector of the suite: short, so a
// crashed leader is replaced quickly.
const electorTTL = expiryTTL

// electors builds n electors sharing one fresh environment, with their
// Crash functions.
func (s electionSuite) electors(t *testing.T, n int) ([]backends.Elector, []Crash) {
	t.Helper()
	ns := uniqueNamespace()
	es := make([]backends.Elector, n)
	crashes := make([]Crash, n)
	for i := range es {
		es[i], crashes[i] = s.target.NewElector(t, backends.ElectorOptions{Namespace: ns, TTL: electorTTL})
	}
	return es, crashes
}

type campaigned struct {
	leadership backends.Leadership
	err        error
}

// goCampaign runs a blocking Campaign in a goroutine; the result arrives on
// the returned (buffered) channel.
func goCampaign(ctx context.Context, e backends.Elector, election, value string) <-chan campaigned {
	ch := make(chan campaigned, 1)
	go func() {
		l, err := e.Campaign(ctx, election, value)
		ch <- campaigned{leadership: l, err: err}
	}()
	return ch
}

// campaign wins an election that nobody else holds.
func campaign(t *testing.T, e backends.Elector, election, value string) backends.Leadership {
	t.Helper()
	l, err := e.Campaign(ctxFor(t, opTimeout), election, value)
	require.NoError(t, err, "campaign %q", election)
	require.NotNil(t, l)
	return l
}

// requireLeader checks what Leader reports.
func requireLeader(t *testing.T, e backends.Elector, l backends.Leadership) {
	t.Helper()
	info, err := e.Leader(ctxFor(t, opTimeout), l.Election())
	require.NoError(t, err)
	assert.Equal(t, backends.LeaderInfo{Election: l.Election(), Value: l.Value(), Epoch: l.Epoch()}, info)
}

// singleLeader: of 5 concurrent candidates exactly one wins; the others
// keep waiting and return the context error when they give up.
func (s electionSuite) singleLeader(t *testing.T) {
	const candidates = 5
	es, _ := s.electors(t, candidates)
	ctx, cancel := context.WithCancel(ctxFor(t, 3*opTimeout))
	defer cancel()
	results := make(chan campaigned, candidates)
	for i, e := range es {
		go func() {
			l, err := e.Campaign(ctx, "primary", fmt.Sprintf("candidate-%d", i))
			results <- campaigned{leadership: l, err: err}
		}()
	}
	winner := await(t, results, opTimeout, "first campaign")
	require.NoError(t, winner.err)
	assert.Equal(t, "primary", winner.leadership.Election())
	assert.True(t, strings.HasPrefix(winner.leadership.Value(), "candidate-"))
	assert.NotZero(t, winner.leadership.Epoch())
	stillBlocked(t, results, 500*time.Millisecond, "a second campaign")
	requireLeader(t, es[0], winner.leadership)
	assert.False(t, closed(winner.leadership.Done()))

	cancel()
	for range candidates - 1 {
		lost := await(t, results, opTimeout, "canceled campaign")
		assert.ErrorIs(t, lost.err, context.Canceled)
		assert.Nil(t, lost.leadership)
	}
	require.NoError(t, winner.leadership.Resign(ctxFor(t, opTimeout)))
}

// resignHandover: Resign passes leadership to the next candidate at once,
// not after the session TTL.
func (s electionSuite) resignHandover(t *testing.T) {
	es, _ := s.electors(t, 2)
	ctx := ctxFor(t, 3*opTimeout)
	a := campaign(t, es[0], "primary", "a")
	next := goCampaign(ctx, es[1], "primary", "b")
	stillBlocked(t, next, 200*time.Millisecond, "campaign")

	require.NoError(t, a.Resign(ctx))
	b := await(t, next, electorTTL/2, "campaign after resign")
	require.NoError(t, b.err)
	assert.Greater(t, b.leadership.Epoch(), a.Epoch())
	require.Eventually(t, func() bool { return closed(a.Done()) }, time.Second, tick, "Done not closed after Resign")
	assert.ErrorIs(t, a.Resign(ctx), backends.ErrNotHeld, "second resign")
	requireLeader(t, es[0], b.leadership)
	assert.False(t, closed(b.leadership.Done()))
	require.NoError(t, b.leadership.Resign(ctx))
}

// crashHandover: when the leader's process dies, its session expires and
// the next candidate takes over.
func (s electionSuite) crashHandover(t *testing.T) {
	es, crashes := s.electors(t, 2)
	require.NotNil(t, crashes[0], "the elector factory returns no Crash")
	ctx := ctxFor(t, expiryWait+opTimeout)
	a := campaign(t, es[0], "primary", "a")
	next := goCampaign(ctx, es[1], "primary", "b")
	stillBlocked(t, next, 200*time.Millisecond, "campaign")

	crashes[0]()
	b := await(t, next, expiryWait, "campaign after the leader crashed")
	require.NoError(t, b.err)
	assert.Greater(t, b.leadership.Epoch(), a.Epoch())
	requireLeader(t, es[1], b.leadership)
	require.Eventually(t, func() bool { return closed(a.Done()) }, expiryWait, tick, "Done of a crashed leader never closed")
	require.NoError(t, b.leadership.Resign(ctx))
}

// epochsIncrease: every new leadership has a greater epoch, whoever wins.
func (s electionSuite) epochsIncrease(t *testing.T) {
	es, _ := s.electors(t, 2)
	ctx := ctxFor(t, 3*opTimeout)
	var prev uint64
	for i := range 6 {
		l := campaign(t, es[i%2], "primary", fmt.Sprintf("term-%d", i))
		assert.Greater(t, l.Epoch(), prev, "term %d", i)
		prev = l.Epoch()
		requireLeader(t, es[(i+1)%2], l)
		require.NoError(t, l.Resign(ctx))
	}
	// Another election has its own leadership, and does not disturb this one.
	other := campaign(t, es[0], "secondary", "x")
	l := campaign(t, es[1], "primary", "last")
	assert.Greater(t, l.Epoch(), prev)
	require.NoError(t, other.Resign(ctx))
	require.NoError(t, l.Resign(ctx))
}

// observe: an observer sees every leadership, in order, then "no leader",
// and its channel closes when its context ends.
func (s electionSuite) observe(t *testing.T) {
	es, _ := s.electors(t, 3)
	ctx := ctxFor(t, 3*opTimeout)
	octx, stop := context.WithCancel(ctx)
	defer stop()
	events, err := es[2].Observe(octx, "primary")
	require.NoError(t, err)

	// next returns the next change, skipping repeats of the last one seen.
	var last backends.LeaderInfo
	next := func(what string) backends.LeaderInfo {
		t.Helper()
		timeout := time.After(opTimeout)
		for {
			select {
			case info, ok := <-events:
				require.True(t, ok, "%s: observe channel closed early", what)
				if info == last {
					continue
				}
				last = info
				return info
			case <-timeout:
				require.FailNow(t, "timed out", "%s: no observation after %v", what, opTimeout)
			}
		}
	}
	// skipEmpty returns the next leader, skipping "no leader" observations.
	skipEmpty := func(what string) backends.LeaderInfo {
		t.Helper()
		for {
			if info := next(what); info.Value != "" {
				return info
			}
		}
	}

	a := campaign(t, es[0], "primary", "a")
	assert.Equal(t, backends.LeaderInfo{Election: "primary", Value: "a", Epoch: a.Epoch()}, skipEmpty("first leader"))

	pending := goCampaign(ctx, es[1], "primary", "b")
	stillBlocked(t, pending, 100*time.Millisecond, "campaign")
	require.NoError(t, a.Resign(ctx))
	b := await(t, pending, opTimeout, "campaign after resign")
	require.NoError(t, b.err)
	assert.Equal(t, backends.LeaderInfo{Election: "primary", Value: "b", Epoch: b.leadership.Epoch()}, skipEmpty("second leader"))

	require.NoError(t, b.leadership.Resign(ctx))
	gone := next("no leader")
	assert.Empty(t, gone.Value, "after the last resign")
	assert.Zero(t, gone.Epoch, "after the last resign")

	c := campaign(t, es[0], "primary", "c")
	assert.Equal(t, backends.LeaderInfo{Election: "primary", Value: "c", Epoch: c.Epoch()}, skipEmpty("third leader"))
	require.NoError(t, c.Resign(ctx))

	stop()
	require.Eventually(t, func() bool {
		for {
			select {
			case _, ok := <-events:
				if !ok {
					return true
				}
			default:
				return false
			}
		}
	}, opTimeout, tick, "observe channel not closed after its context ended")
}

func (s electionSuite) leaderNotFound(t *testing.T) {
	es, _ := s.electors(t, 1)
	ctx := ctxFor(t, opTimeout)
	_, err := es[0].Leader(ctx, "primary")
	assert.ErrorIs(t, err, backends.ErrNotFound, "never had a leader")
	l := campaign(t, es[0], "primary", "a")
	require.NoError(t, l.Resign(ctx))
	_, err = es[0].Leader(ctx, "primary")
	assert.ErrorIs(t, err, backends.ErrNotFound, "after resign")
}

// campaignCtxCancel: a candidate that gives up returns promptly with the
// context's error and is no candidate any more: it never becomes leader
// later, and the next candidate is not queued behind it.
func (s electionSuite) campaignCtxCancel(t *testing.T) {
	es, _ := s.electors(t, 3)
	ctx := ctxFor(t, 3*opTimeout)
	a := campaign(t, es[0], "primary", "a")

	const deadline = 300 * time.Millisecond
	const prompt = 500 * time.Millisecond
	dctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	_, err := es[1].Campaign(dctx, "primary", "b")
	elapsed := time.Since(start)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, elapsed, deadline+prompt, "campaign returned %v after a %v deadline", elapsed, deadline)

	require.NoError(t, a.Resign(ctx))
	_, err = es[0].Leader(ctx, "primary")
	assert.ErrorIs(t, err, backends.ErrNotFound, "a candidate that gave up became leader")
	cctx, ccancel := context.WithTimeout(ctx, electorTTL/2)
	defer ccancel()
	c, err := es[2].Campaign(cctx, "primary", "c")
	require.NoError(t, err, "the next candidate waited behind one that gave up")
	requireLeader(t, es[1], c)
	require.NoError(t, c.Resign(ctx))
}

func (s electionSuite) invalidArgs(t *testing.T) {
	es, _ := s.electors(t, 1)
	ctx := ctxFor(t, opTimeout)
	for what, name := range map[string]string{
		"empty":    "",
		"slash":    "a/b",
		"nul":      "a\x00b",
		"too long": strings.Repeat("e", backends.MaxNameLen+1),
	} {
		_, err := es[0].Campaign(ctx, name, "v")
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "campaign, %s name", what)
		_, err = es[0].Leader(ctx, name)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "leader, %s name", what)
		_, err = es[0].Observe(ctx, name)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "observe, %s name", what)
	}
}
