package history_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/internal/history"
)

// base is the synthetic histories' time zero; ms(n) is n ms after it.
var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()

func ms(n int) int64 { return base + int64(n)*int64(time.Millisecond) }

const ttl = 2 * time.Second

// script builds one lock's history from the holders' point of view.
type script struct{ events []history.Event }

func (s *script) add(proc, lease string, kind history.Kind, at int, token uint64) *script {
	e := history.Event{Process: proc, Lock: "L", Lease: lease, Kind: kind, Time: ms(at), Token: token}
	if kind == history.AcquireInvoked || kind == history.Granted {
		e.TTL = ttl
	}
	s.events = append(s.events, e)
	return s
}

// hold is a whole lease: invoked at acq, granted at grant, Release invoked
// at rel (its reply and Done 5 ms later).
func (s *script) hold(proc, lease string, token uint64, acq, grant, rel int) *script {
	return s.add(proc, lease, history.AcquireInvoked, acq, 0).
		add(proc, lease, history.Granted, grant, token).
		add(proc, lease, history.ReleaseInvoked, rel, 0).
		add(proc, lease, history.ReleaseReturned, rel+5, 0).
		add(proc, lease, history.Done, rel+5, 0)
}

// granted is a lease invoked at acq and granted at grant, and nothing more.
func (s *script) granted(proc, lease string, token uint64, acq, grant int) *script {
	return s.add(proc, lease, history.AcquireInvoked, acq, 0).add(proc, lease, history.Granted, grant, token)
}

func (s *script) write(proc, lease string, kind history.Kind, at int, token uint64) *script {
	return s.add(proc, lease, kind, at, token)
}

func TestCheckLocks(t *testing.T) {
	cases := []struct {
		name   string
		events []history.Event
		deaths []history.Death
		grants int
		double int
		regr   int
		stale  int
	}{{
		name: "clean hand-offs",
		events: new(script).
			hold("a", "a/1", 1, 0, 10, 200).
			hold("b", "b/1", 2, 50, 205, 400).
			hold("c", "c/1", 3, 60, 410, 600).
			write("a", "a/1", history.WriteAccepted, 20, 1).
			write("b", "b/1", history.WriteAccepted, 210, 2).
			write("c", "c/1", history.WriteAccepted, 420, 3).events,
		grants: 3,
	}, {
		name: "a holder's interval ends when it invokes Release, not at the reply",
		events: new(script).
			add("a", "a/1", history.AcquireInvoked, 0, 0).
			add("a", "a/1", history.Granted, 10, 1).
			add("a", "a/1", history.ReleaseInvoked, 100, 0).
			granted("b", "b/1", 2, 50, 150).
			add("a", "a/1", history.ReleaseReturned, 400, 0).events,
		grants: 2,
	}, {
		name: "granted while the earlier holder has not released",
		events: new(script).
			hold("a", "a/1", 1, 0, 10, 500).
			hold("b", "b/1", 2, 50, 300, 600).events,
		grants: 2, double: 1,
	}, {
		name: "granted before the earlier holder saw Done (a grain that moved)",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			granted("b", "b/1", 2, 50, 300).
			add("a", "a/1", history.Done, 400, 0).
			add("a", "a/1", history.ReleaseInvoked, 410, 0).events,
		grants: 2, double: 1,
	}, {
		name: "paused holder: Done seen late, but its TTL had passed before the next grant",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			granted("b", "b/1", 2, 50, 2100).
			add("a", "a/1", history.Done, 3500, 0).
			add("a", "a/1", history.ReleaseInvoked, 3600, 0).
			add("b", "b/1", history.ReleaseInvoked, 3700, 0).events,
		grants: 2,
	}, {
		name: "granted before the earlier holder's own deadline",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			granted("b", "b/1", 2, 50, 1900).
			add("a", "a/1", history.Done, 3500, 0).events,
		grants: 2, double: 1,
	}, {
		name: "an auto-renewed lease has no TTL deadline",
		events: func() []history.Event {
			s := new(script).granted("a", "a/1", 1, 0, 10)
			s.events[0].Renew = true
			return s.granted("b", "b/1", 2, 50, 2100).add("a", "a/1", history.Done, 3500, 0).events
		}(),
		grants: 2, double: 1,
	}, {
		name: "killed holder: granted again after the death",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			granted("b", "b/1", 2, 50, 600).events,
		deaths: []history.Death{{Process: "a", Time: ms(500)}},
		grants: 2,
	}, {
		name: "killed holder: granted again before the death",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			granted("b", "b/1", 2, 50, 400).events,
		deaths: []history.Death{{Process: "a", Time: ms(500)}},
		grants: 2, double: 1,
	}, {
		name: "three holders at once are three pairs",
		events: new(script).
			hold("a", "a/1", 1, 0, 10, 500).
			hold("b", "b/1", 2, 0, 100, 500).
			hold("c", "c/1", 3, 0, 200, 500).events,
		grants: 3, double: 3,
	}, {
		name: "token regression",
		events: new(script).
			hold("a", "a/1", 5, 0, 10, 100).
			hold("b", "b/1", 3, 50, 110, 200).
			hold("c", "c/1", 4, 60, 210, 300).events,
		grants: 3, regr: 2,
	}, {
		name: "a fenced-off write is not a violation",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			write("a", "a/1", history.WriteAccepted, 20, 1).
			hold("b", "b/1", 2, 50, 2100, 2500).
			write("b", "b/1", history.WriteAccepted, 2110, 2).
			write("a", "a/1", history.WriteRejected, 3500, 1).events,
		grants: 2,
	}, {
		name: "stale write accepted: the paused holder wrote before the next holder did",
		events: new(script).
			granted("a", "a/1", 1, 0, 10).
			write("a", "a/1", history.WriteAccepted, 20, 1).
			hold("b", "b/1", 2, 50, 2100, 2500).
			write("a", "a/1", history.WriteAccepted, 2105, 1).
			write("b", "b/1", history.WriteAccepted, 2110, 2).events,
		grants: 2, stale: 1,
	}, {
		name: "locks are judged apart",
		events: func() []history.Event {
			s := new(script).hold("a", "a/1", 7, 0, 10, 500).hold("b", "b/1", 3, 0, 100, 500)
			for i := range s.events {
				if s.events[i].Process == "b" {
					s.events[i].Lock = "M"
				}
			}
			return s.events
		}(),
		grants: 2,
	}, {
		name: "failed acquires grant nothing",
		events: new(script).
			hold("a", "a/1", 1, 0, 10, 500).
			add("b", "b/1", history.AcquireInvoked, 50, 0).
			add("b", "b/1", history.AcquireFailed, 300, 0).events,
		grants: 1,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := history.CheckLocks(tc.events, tc.deaths)
			t.Logf("%s", rep)
			assert.Equal(t, tc.grants, rep.Grants, "grants")
			assert.Equal(t, tc.double, rep.DoubleGrants, "double grants")
			assert.Equal(t, tc.regr, rep.TokenRegressions, "token regressions")
			assert.Equal(t, tc.stale, rep.StaleWritesAccepted, "stale writes accepted")
			assert.Len(t, rep.Violations, tc.double+tc.regr+tc.stale)
			assert.Equal(t, len(rep.Violations) == 0, rep.OK())
		})
	}
}

// TestCheckLocksNamesBothLeases: a double grant names both leases, the
// times, and what ended (or did not end) the earlier one.
func TestCheckLocksNamesBothLeases(t *testing.T) {
	events := new(script).
		granted("a", "a/1", 1, 0, 10).
		granted("b", "b/1", 2, 50, 300).
		add("a", "a/1", history.Done, 400, 0).events
	rep := history.CheckLocks(events, nil)
	require.Len(t, rep.Violations, 1)
	v := rep.Violations[0]
	assert.Equal(t, history.RuleDoubleGrant, v.Rule)
	assert.Equal(t, "L", v.Lock)
	assert.Equal(t, time.Unix(0, ms(300)), v.At)
	for _, want := range []string{"b/1", "a/1", "t+0.300s", "t+0.400s", "Done observed"} {
		assert.Contains(t, v.Text, want)
	}
	assert.Equal(t, time.Unix(0, base), rep.Start)
}

// TestCheckLocksStaleWriteSaysWhy: the violation tells a writer whose
// lease had ended from two holders writing at once.
func TestCheckLocksStaleWriteSaysWhy(t *testing.T) {
	events := new(script).
		granted("a", "a/1", 1, 0, 10).
		granted("b", "b/1", 2, 50, 100).
		write("b", "b/1", history.WriteAccepted, 110, 2).
		write("a", "a/1", history.WriteAccepted, 120, 1). // not fenced: the resource is broken
		write("a", "a/1", history.WriteAccepted, 2100, 1).events
	rep := history.CheckLocks(events, nil)
	assert.Equal(t, 1, rep.DoubleGrants)
	assert.Equal(t, 2, rep.StaleWritesAccepted)
	var texts []string
	for _, v := range rep.Violations {
		if v.Rule == history.RuleStaleWriteAccepted {
			texts = append(texts, v.Text)
		}
	}
	require.Len(t, texts, 2)
	assert.Contains(t, texts[0], "still valid: two holders")
	assert.Contains(t, texts[1], "had ended at t+2.000s (acquire invoked + TTL 2s)")
}

func TestLeasesValidity(t *testing.T) {
	events := new(script).
		hold("a", "a/1", 1, 0, 10, 200).
		granted("b", "b/1", 2, 100, 210).
		granted("c", "c/1", 3, 1000, 2400).
		add("c", "c/1", history.Done, 2350, 0). // Done before the grant was read: ends it at once
		add("d", "d/1", history.AcquireInvoked, 0, 0).events
	ls := history.Leases(events, []history.Death{{Process: "b", Time: ms(1000)}})
	require.Len(t, ls, 3)
	assert.Equal(t, []string{"a/1", "b/1", "c/1"}, []string{ls[0].ID, ls[1].ID, ls[2].ID})
	assert.Equal(t, "release", ls[0].EndedBy)
	assert.Equal(t, ms(200), ls[0].ValidUntil)
	assert.Equal(t, "death", ls[1].EndedBy)
	assert.Equal(t, ms(1000), ls[1].Died)
	assert.Equal(t, "done", ls[2].EndedBy)
	assert.False(t, ls[2].ValidAt(ms(2400)), "a lease that ended before its grant was read is never valid")
	assert.True(t, ls[0].ValidAt(ms(10)))
	assert.False(t, ls[0].ValidAt(ms(200)))
}

func TestEventRoundTrip(t *testing.T) {
	e := history.Event{Process: "node1", Lock: "L", Lease: "node1/3", Kind: history.Granted, Time: ms(5), Token: 42, TTL: ttl, Renew: true}
	got, err := history.ParseEvent(e.String())
	require.NoError(t, err)
	assert.Equal(t, e, got)
	_, err = history.ParseEvent(`{"lock":"L"}`)
	require.Error(t, err)
	_, err = history.ParseEvent(`not json`)
	require.Error(t, err)
}
