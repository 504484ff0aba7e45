package components

import "time"

// lockQueue is the local queue of one lock name, and the policy by which
// the LockActor serves it. It knows request ids, lease ids and times only —
// no actor, no backend: the actor makes the backend calls, answers the
// requesters and tells the queue what happened.
//
// The rules:
//
//   - Waiters are served in arrival order.
//   - The head may run a backend Acquire only while no other waiter runs
//     one, no lease of the lock is held through the actor, and no yield
//     (below) lasts. A waiter whose deadline has passed does not run.
//   - A TryAcquire must not overtake waiters that are queued or running.
//   - A lease being given back goes straight to the head (a hand-off) when
//     it is the only lease of the lock held here and no backend Acquire
//     runs; waiters whose deadline has passed are dropped from the head on
//     the way.
//   - Hand-offs form a chain that starts when the lock is obtained from the
//     backend. Once the chain has lasted limit, the next lease given back is
//     released instead, and no local waiter acquires for yield: contenders
//     outside the actor, which have no place in this queue, get their turn.
type lockQueue struct {
	limit time.Duration // how long a hand-off chain may last; negative: no limit
	yield time.Duration // how long the lock is left to outsiders after a chain

	waiting []queuedWaiter  // arrival order; none of them runs
	running string          // the request id of the waiter running its backend Acquire; "" for none
	held    map[string]bool // lease ids held through the actor
	// chainStart is when the lock was last obtained from the backend (not
	// by a hand-off): the start of the current hand-off chain.
	chainStart time.Time
	// yieldUntil: no local waiter acquires before then.
	yieldUntil time.Time
}

// handoffYield is how long a lock released at the end of a hand-off chain
// is left to contenders outside the actor before the local waiters try
// again: long enough for a Redis waiter of another process to be notified
// and run its acquire script, short enough to cost little (2% of a second
// of sustained contention with the default limit).
const handoffYield = 20 * time.Millisecond

// queuedWaiter is one waiting acquire in a lockQueue.
type queuedWaiter struct {
	id       string    // the request id
	deadline time.Time // zero: no limit
}

// expired reports whether w's deadline has passed at now.
func (w queuedWaiter) expired(now time.Time) bool {
	return !w.deadline.IsZero() && !now.Before(w.deadline)
}

// newLockQueue returns an empty queue with the given hand-off chain limit
// (negative: none) and yield.
func newLockQueue(limit, yield time.Duration) *lockQueue {
	return &lockQueue{limit: limit, yield: yield, held: map[string]bool{}}
}

// add queues a waiter behind the others.
func (q *lockQueue) add(id string, deadline time.Time) {
	q.waiting = append(q.waiting, queuedWaiter{id: id, deadline: deadline})
}

// remove takes waiter id out of the queue (it was withdrawn, or its
// deadline passed). False when it is not queued — it runs, or is gone.
func (q *lockQueue) remove(id string) bool {
	for i, w := range q.waiting {
		if w.id != id {
			continue
		}
		if i == 0 {
			q.pop()
		} else {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
		}
		return true
	}
	return false
}

// pop removes the head.
func (q *lockQueue) pop() queuedWaiter {
	w := q.waiting[0]
	q.waiting[0] = queuedWaiter{}
	q.waiting = q.waiting[1:]
	return w
}

// busy reports whether waiters are queued or running: a TryAcquire must
// not overtake them.
func (q *lockQueue) busy() bool { return q.running != "" || len(q.waiting) > 0 }

// empty reports whether nothing is queued, running or held: the actor may
// forget the queue.
func (q *lockQueue) empty() bool { return !q.busy() && len(q.held) == 0 }

// next removes and returns the head when the lock may be acquired from the
// backend for it at now: no waiter runs, no lease is held here, no yield
// lasts. The caller then starts it, or answers it (its deadline passed, the
// backend is down) and asks again.
func (q *lockQueue) next(now time.Time) (queuedWaiter, bool) {
	if q.running != "" || len(q.held) > 0 || len(q.waiting) == 0 || now.Before(q.yieldUntil) {
		return queuedWaiter{}, false
	}
	return q.pop(), true
}

// start records that waiter id, returned by next, runs its backend
// Acquire.
func (q *lockQueue) start(id string) { q.running = id }

// acquireEnded records that the backend Acquire of waiter id returned.
func (q *lockQueue) acquireEnded(id string) {
	if q.running == id {
		q.running = ""
	}
}

// hold records a lease obtained from the backend (acquired, tried or
// adopted) at now: a new hand-off chain starts.
func (q *lockQueue) hold(leaseID string, now time.Time) {
	q.held[leaseID] = true
	q.chainStart = now
}

// holdUnused records a lease granted to a waiter that withdrew meanwhile,
// held only until it is given back at once. The hand-off chain is left as
// it was.
func (q *lockQueue) holdUnused(leaseID string) { q.held[leaseID] = true }

// release forgets a lease that is no longer held.
func (q *lockQueue) release(leaseID string) { delete(q.held, leaseID) }

// handoffTarget decides where lease leaseID, being given back at now, goes:
// to the waiter whose request id it returns, or to the backend (release)
// when that is "". It drops from the head the waiters whose deadline has
// passed and returns them, for the caller to answer. yield is set when the
// chain has reached its limit: the lock is to be released, and next
// returns nothing for q.yield — the caller asks again after that.
//
// The target stays queued until handedOff: a hand-off the backend refuses
// leaves the queue as it was.
func (q *lockQueue) handoffTarget(leaseID string, now time.Time) (target string, expired []string, yield bool) {
	if q.running != "" || len(q.held) != 1 || !q.held[leaseID] {
		return "", nil, false
	}
	for len(q.waiting) > 0 && q.waiting[0].expired(now) {
		expired = append(expired, q.pop().id)
	}
	if len(q.waiting) == 0 {
		return "", expired, false
	}
	if q.limit >= 0 && now.Sub(q.chainStart) >= q.limit {
		q.yieldUntil = now.Add(q.yield)
		return "", expired, true
	}
	return q.waiting[0].id, expired, false
}

// handedOff records that waiter target, returned by handoffTarget, was
// handed the lock as lease leaseID (the lease given back has been
// released from the queue already). The hand-off chain goes on.
func (q *lockQueue) handedOff(target, leaseID string) {
	q.remove(target)
	q.held[leaseID] = true
}
