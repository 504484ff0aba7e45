package components

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The lock queue's policy, on its own: no actor, no backend, no clock —
// every decision is taken at a time the test gives.

const (
	testLimit = time.Second
	testYield = 20 * time.Millisecond
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// drain pops every waiter next lets go at now, in order.
func drain(q *lockQueue, now time.Time) []string {
	var ids []string
	for {
		w, ok := q.next(now)
		if !ok {
			return ids
		}
		ids = append(ids, w.id)
	}
}

// waitingIDs lists the queued request ids, head first.
func waitingIDs(q *lockQueue) []string {
	var ids []string
	for _, w := range q.waiting {
		ids = append(ids, w.id)
	}
	return ids
}

func TestLockQueueNext(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(q *lockQueue)
		now   time.Time
		want  []string // what next lets go, in order
	}{
		{
			name:  "empty",
			build: func(*lockQueue) {},
			now:   t0,
		},
		{
			name: "arrival order",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				q.add("c", time.Time{})
			},
			now:  t0,
			want: []string{"a", "b", "c"},
		},
		{
			name: "a waiter runs",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				w, _ := q.next(t0)
				q.start(w.id)
			},
			now: t0,
		},
		{
			name: "the running waiter's acquire ended",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				w, _ := q.next(t0)
				q.start(w.id)
				q.acquireEnded("a")
			},
			now:  t0,
			want: []string{"b"},
		},
		{
			name: "the end of another waiter's acquire changes nothing",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				w, _ := q.next(t0)
				q.start(w.id)
				q.acquireEnded("x")
			},
			now: t0,
		},
		{
			name: "a lease is held here",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
			},
			now: t0,
		},
		{
			name: "the lease was released",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
				q.release("L1")
			},
			now:  t0,
			want: []string{"a"},
		},
		{
			name: "expired waiters are let go too, for the caller to answer",
			build: func(q *lockQueue) {
				q.add("a", at(time.Millisecond))
				q.add("b", time.Time{})
			},
			now:  at(time.Second),
			want: []string{"a", "b"},
		},
		{
			name: "during a yield",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
				q.handoffTarget("L1", at(testLimit)) // the chain is over: yield
				q.release("L1")
			},
			now: at(testLimit + testYield/2),
		},
		{
			name: "after a yield",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
				q.handoffTarget("L1", at(testLimit))
				q.release("L1")
			},
			now:  at(testLimit + testYield),
			want: []string{"a"},
		},
		{
			name: "withdrawn waiters are gone",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				q.add("c", time.Time{})
				q.remove("b")
				q.remove("a")
			},
			now:  t0,
			want: []string{"c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newLockQueue(testLimit, testYield)
			tc.build(q)
			assert.Equal(t, tc.want, drain(q, tc.now))
		})
	}
}

func TestLockQueueExpired(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Time
		now      time.Time
		want     bool
	}{
		{"no deadline", time.Time{}, at(time.Hour), false},
		{"before", at(time.Second), at(time.Second - time.Nanosecond), false},
		{"at", at(time.Second), at(time.Second), true},
		{"after", at(time.Second), at(2 * time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, queuedWaiter{id: "w", deadline: tc.deadline}.expired(tc.now))
		})
	}
}

func TestLockQueueHandoffTarget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		limit       time.Duration
		build       func(q *lockQueue)
		lease       string
		now         time.Time
		target      string
		expired     []string
		yield       bool
		waitingLeft []string
	}{
		{
			name: "to the head",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
				q.add("b", time.Time{})
			},
			lease: "L1", now: at(10 * time.Millisecond),
			target: "a", waitingLeft: []string{"a", "b"},
		},
		{
			name:  "nobody waits",
			build: func(q *lockQueue) { q.hold("L1", t0) },
			lease: "L1", now: at(10 * time.Millisecond),
		},
		{
			name: "expired waiters are dropped from the head",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", at(5*time.Millisecond))
				q.add("b", at(5*time.Millisecond))
				q.add("c", time.Time{})
				q.add("d", at(5*time.Millisecond)) // behind c: stays for now
			},
			lease: "L1", now: at(10 * time.Millisecond),
			target: "c", expired: []string{"a", "b"}, waitingLeft: []string{"c", "d"},
		},
		{
			name: "every waiter expired",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", at(5*time.Millisecond))
			},
			lease: "L1", now: at(10 * time.Millisecond),
			expired: []string{"a"},
		},
		{
			name: "a backend acquire runs",
			build: func(q *lockQueue) {
				q.add("a", time.Time{})
				w, _ := q.next(t0)
				q.start(w.id)
				q.hold("L1", t0) // adopted meanwhile
				q.add("b", time.Time{})
			},
			lease: "L1", now: at(10 * time.Millisecond),
			waitingLeft: []string{"b"},
		},
		{
			name: "another lease of the lock is held here",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.hold("L2", t0)
				q.add("a", time.Time{})
			},
			lease: "L1", now: at(10 * time.Millisecond),
			waitingLeft: []string{"a"},
		},
		{
			name: "a lease not held here",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
			},
			lease: "L9", now: at(10 * time.Millisecond),
			waitingLeft: []string{"a"},
		},
		{
			name: "the chain reached its limit",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
			},
			lease: "L1", now: at(testLimit),
			yield: true, waitingLeft: []string{"a"},
		},
		{
			name:  "no limit",
			limit: -1,
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
			},
			lease: "L1", now: at(time.Hour),
			target: "a", waitingLeft: []string{"a"},
		},
		{
			name: "a hand-off continues the chain",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.add("a", time.Time{})
				q.add("b", time.Time{})
				target, _, _ := q.handoffTarget("L1", at(testLimit/2))
				q.release("L1")
				q.handedOff(target, "L2")
			},
			lease: "L2", now: at(testLimit),
			yield: true, waitingLeft: []string{"b"},
		},
		{
			name: "a lease from the backend starts a new chain",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.release("L1")
				q.hold("L2", at(testLimit))
				q.add("a", time.Time{})
			},
			lease: "L2", now: at(testLimit + testLimit/2),
			target: "a", waitingLeft: []string{"a"},
		},
		{
			name: "an unused grant continues the chain it came into",
			build: func(q *lockQueue) {
				q.hold("L1", t0)
				q.release("L1")
				q.holdUnused("L2")
				q.add("a", time.Time{})
			},
			lease: "L2", now: at(testLimit),
			yield: true, waitingLeft: []string{"a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = testLimit
			}
			q := newLockQueue(limit, testYield)
			tc.build(q)
			target, expired, yield := q.handoffTarget(tc.lease, tc.now)
			assert.Equal(t, tc.target, target, "target")
			assert.Equal(t, tc.expired, expired, "expired")
			assert.Equal(t, tc.yield, yield, "yield")
			assert.Equal(t, tc.waitingLeft, waitingIDs(q), "still waiting")
		})
	}
}

// TestLockQueueHandoffChain follows one lock through its queue: waiters
// get it in arrival order by hand-off until the chain reaches its limit,
// then it goes to the backend, the queue yields, and the next waiter
// acquires afresh.
func TestLockQueueHandoffChain(t *testing.T) {
	q := newLockQueue(testLimit, testYield)
	q.add("a", time.Time{})
	w, ok := q.next(t0)
	assert.True(t, ok)
	assert.Equal(t, "a", w.id)
	q.start("a")
	for _, id := range []string{"b", "c", "d"} {
		q.add(id, time.Time{})
	}
	assert.True(t, q.busy(), "waiters queued and running")
	_, ok = q.next(t0)
	assert.False(t, ok, "b waits while a runs")

	q.acquireEnded("a")
	q.hold("La", t0) // a got the lock from the backend: the chain starts
	target, _, _ := q.handoffTarget("La", at(400*time.Millisecond))
	assert.Equal(t, "b", target)
	q.release("La")
	q.handedOff("b", "Lb")

	target, _, _ = q.handoffTarget("Lb", at(800*time.Millisecond))
	assert.Equal(t, "c", target)
	q.release("Lb")
	q.handedOff("c", "Lc")

	target, _, yield := q.handoffTarget("Lc", at(1200*time.Millisecond))
	assert.Empty(t, target, "past the limit the lock goes to the backend")
	assert.True(t, yield)
	q.release("Lc")
	_, ok = q.next(at(1210 * time.Millisecond))
	assert.False(t, ok, "nobody acquires during the yield")
	w, ok = q.next(at(1200*time.Millisecond + testYield))
	assert.True(t, ok)
	assert.Equal(t, "d", w.id, "after the yield the next waiter acquires")
	q.start("d")
	assert.False(t, q.empty())
	q.acquireEnded("d")
	assert.True(t, q.empty(), "nothing queued, running or held")
}

func TestLockQueueRemove(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove string
		want   bool
		left   []string
	}{
		{"the head", "a", true, []string{"b", "c"}},
		{"the middle", "b", true, []string{"a", "c"}},
		{"the tail", "c", true, []string{"a", "b"}},
		{"the running waiter", "r", false, []string{"a", "b", "c"}},
		{"unknown", "x", false, []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newLockQueue(testLimit, testYield)
			q.add("r", time.Time{})
			w, _ := q.next(t0)
			q.start(w.id)
			for _, id := range []string{"a", "b", "c"} {
				q.add(id, time.Time{})
			}
			assert.Equal(t, tc.want, q.remove(tc.remove))
			assert.Equal(t, tc.left, waitingIDs(q))
			assert.True(t, q.busy())
		})
	}
}

func TestLockQueueBusyAndEmpty(t *testing.T) {
	q := newLockQueue(testLimit, testYield)
	assert.False(t, q.busy())
	assert.True(t, q.empty())

	q.hold("L1", t0)
	assert.False(t, q.busy(), "a held lease alone lets a TryAcquire through")
	assert.False(t, q.empty(), "but the queue is kept for it")

	q.add("a", time.Time{})
	assert.True(t, q.busy(), "a queued waiter")
	q.release("L1")
	w, _ := q.next(t0)
	q.start(w.id)
	assert.True(t, q.busy(), "a running waiter")
	q.acquireEnded("a")
	assert.True(t, q.empty())
}
