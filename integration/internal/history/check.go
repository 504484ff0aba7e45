package history

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The rules a Violation can break.
const (
	RuleDoubleGrant        = "double-grant"
	RuleTokenRegression    = "token-regression"
	RuleStaleWriteAccepted = "stale-write-accepted"
)

// Violation is one broken rule, told for a person.
type Violation struct {
	Rule string    // one of the Rule constants
	Lock string    // the lock
	At   time.Time // when it happened (the later grant, the write)
	Text string    // what happened, with times as offsets from Report.Start
}

// Report is the outcome of CheckLocks.
type Report struct {
	// Start is the earliest time in the history; violations give their
	// times as offsets from it ("t+12.345s").
	Start time.Time

	Grants              int // leases granted
	TokenRegressions    int // grants whose token is not above every earlier grant's
	DoubleGrants        int // pairs of leases of one lock valid at once
	StaleWritesAccepted int // writes accepted after a higher token was granted
	WritesAccepted      int // every write the resource accepted
	WritesRejected      int // every write the resource fenced off

	Violations []Violation // in order of time
}

// OK reports whether the history broke no rule.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// String is a summary line and one line per violation.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d grants, %d double grants, %d token regressions, %d stale writes accepted (writes: %d accepted, %d rejected)",
		r.Grants, r.DoubleGrants, r.TokenRegressions, r.StaleWritesAccepted, r.WritesAccepted, r.WritesRejected)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "\n  %s %s: %s", v.Rule, v.Lock, v.Text)
	}
	return b.String()
}

// CheckLocks judges a lock history (see the package doc for the rules).
// Events may come in any order and from any number of processes; deaths
// are the processes killed and when.
func CheckLocks(events []Event, deaths []Death) Report {
	var r Report
	start := int64(0)
	for _, e := range events {
		if start == 0 || e.Time < start {
			start = e.Time
		}
	}
	for _, d := range deaths {
		if start == 0 || d.Time < start {
			start = d.Time
		}
	}
	r.Start = time.Unix(0, start)
	at := func(t int64) string {
		if t == never {
			return "the end"
		}
		return fmt.Sprintf("t+%.3fs", time.Duration(t-start).Seconds())
	}

	leases := Leases(events, deaths)
	r.Grants = len(leases)
	byLock := map[string][]Lease{}
	byID := map[string]Lease{}
	for _, l := range leases {
		byLock[l.Lock] = append(byLock[l.Lock], l) // in grant order
		byID[l.ID] = l
	}
	locks := make([]string, 0, len(byLock))
	for name := range byLock {
		locks = append(locks, name)
	}
	slices.Sort(locks)

	for _, name := range locks {
		ls := byLock[name]
		// Token order.
		var top Lease
		for i, l := range ls {
			if i > 0 && l.Token <= top.Token {
				r.TokenRegressions++
				r.add(RuleTokenRegression, name, l.Granted, fmt.Sprintf(
					"lease %s (%s) granted at %s with token %d, not above token %d of lease %s (%s) granted at %s",
					l.ID, l.Process, at(l.Granted), l.Token, top.Token, top.ID, top.Process, at(top.Granted)))
			}
			if i == 0 || l.Token > top.Token {
				top = l
			}
		}
		// Mutual exclusion: each grant against every earlier lease.
		for j, later := range ls {
			for _, earlier := range ls[:j] {
				if !earlier.ValidAt(later.Granted) {
					continue
				}
				r.DoubleGrants++
				r.add(RuleDoubleGrant, name, later.Granted, fmt.Sprintf(
					"lease %s (%s, token %d) granted at %s while lease %s (%s, token %d, granted at %s) was valid until %s (%s)",
					later.ID, later.Process, later.Token, at(later.Granted),
					earlier.ID, earlier.Process, earlier.Token, at(earlier.Granted), at(earlier.ValidUntil), endedBy(earlier)))
			}
		}
	}

	// Fencing: an accepted write against the grants returned before it.
	for _, e := range events {
		switch e.Kind {
		case WriteRejected:
			r.WritesRejected++
			continue
		case WriteAccepted:
			r.WritesAccepted++
		default:
			continue
		}
		var newer *Lease
		for i, g := range byLock[e.Lock] {
			if g.Granted >= e.Time {
				break
			}
			if g.Token > e.Token && (newer == nil || g.Token > newer.Token) {
				newer = &byLock[e.Lock][i]
			}
		}
		if newer == nil {
			continue
		}
		writer := "its lease is not in the history"
		if l, ok := byID[e.Lease]; ok {
			if l.ValidAt(e.Time) {
				writer = "its lease was still valid: two holders"
			} else {
				writer = fmt.Sprintf("its lease had ended at %s (%s)", at(l.ValidUntil), endedBy(l))
			}
		}
		r.StaleWritesAccepted++
		r.add(RuleStaleWriteAccepted, e.Lock, e.Time, fmt.Sprintf(
			"write of lease %s (%s) with token %d accepted at %s after lease %s (%s) was granted token %d at %s; %s",
			e.Lease, e.Process, e.Token, at(e.Time), newer.ID, newer.Process, newer.Token, at(newer.Granted), writer))
	}
	slices.SortStableFunc(r.Violations, func(a, b Violation) int { return a.At.Compare(b.At) })
	return r
}

func (r *Report) add(rule, lock string, t int64, text string) {
	r.Violations = append(r.Violations, Violation{Rule: rule, Lock: lock, At: time.Unix(0, t), Text: text})
}

func endedBy(l Lease) string {
	switch l.EndedBy {
	case "release":
		return "release invoked"
	case "done":
		return "Done observed"
	case "ttl":
		return fmt.Sprintf("acquire invoked + TTL %v", l.TTL)
	case "death":
		return "process killed"
	}
	return "never ended"
}
