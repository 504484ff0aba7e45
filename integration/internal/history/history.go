package history

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Kind is what an Event records.
type Kind string

// The kinds of event. A holder records everything but the write outcomes,
// which the resource records with its own clock.
const (
	AcquireInvoked  Kind = "acquire-invoked"  // before Acquire is called
	AcquireFailed   Kind = "acquire-failed"   // Acquire returned an error (Err)
	Granted         Kind = "granted"          // Acquire returned a lease (Token, TTL)
	Done            Kind = "done"             // the holder saw the lease's Done closed
	ReleaseInvoked  Kind = "release-invoked"  // before Release is called
	ReleaseReturned Kind = "release-returned" // Release returned (Err when it failed)
	WriteInvoked    Kind = "write-invoked"    // the holder is about to write with Token
	WriteAccepted   Kind = "write-accepted"   // the resource accepted a write with Token
	WriteRejected   Kind = "write-rejected"   // the resource fenced a write with Token off
)

// Event is one step of one lease's life. Lease is unique per attempt to
// acquire (a process name and a counter, say), so every event of one
// attempt — invocation, grant, writes, release — carries the same id.
type Event struct {
	Process string        `json:"process"`             // node name
	Lock    string        `json:"lock"`                // lock name
	Lease   string        `json:"lease"`               // unique per attempt
	Kind    Kind          `json:"kind"`                //
	Time    int64         `json:"time"`                // wall clock, UnixNano
	Token   uint64        `json:"token,omitempty"`     // granted, write-*
	TTL     time.Duration `json:"ttl,omitempty"`       // acquire-invoked (requested), granted (the lease's)
	Renew   bool          `json:"autorenew,omitempty"` // acquire-invoked: the lease auto-renews
	Err     string        `json:"err,omitempty"`       // acquire-failed, release-returned
}

// At is the event's time.
func (e Event) At() time.Time { return time.Unix(0, e.Time) }

// String is the event as one JSON object: the form holders print and
// ParseEvent reads.
func (e Event) String() string {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Sprintf("%#v", e) // cannot happen: every field marshals
	}
	return string(b)
}

// ParseEvent reads an event printed by Event.String.
func ParseEvent(s string) (Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return Event{}, fmt.Errorf("history: event %q: %w", s, err)
	}
	if e.Lease == "" || e.Kind == "" || e.Time == 0 {
		return Event{}, fmt.Errorf("history: event %q: lease, kind and time are required", s)
	}
	return e, nil
}

// Death is a process that was killed (SIGKILL) at Time (UnixNano): from
// then on it holds nothing.
type Death struct {
	Process string `json:"process"`
	Time    int64  `json:"time"`
}

// never is the end of a lease that nothing ended.
const never = math.MaxInt64

// Lease is one granted lease, summarised from its events. Times are
// UnixNano, zero when the event is not in the history.
type Lease struct {
	ID, Process, Lock string
	Token             uint64
	TTL               time.Duration // the granted lease's, else the requested one
	AutoRenew         bool

	AcquireInvoked, Granted int64
	ReleaseInvoked          int64
	ReleaseReturned         int64
	Done                    int64 // Done observed by the holder
	Died                    int64 // its process died (after the grant)

	// ValidUntil is the earliest end of the lease's validity (see the
	// package doc); math.MaxInt64 when nothing ended it.
	ValidUntil int64
	// EndedBy names what set ValidUntil: "release", "done", "ttl",
	// "death" or "" (nothing).
	EndedBy string
}

// ValidAt reports whether the lease was valid at t (UnixNano).
func (l Lease) ValidAt(t int64) bool { return l.Granted <= t && t < l.ValidUntil }

// Leases returns every granted lease of the history, in order of grant
// time (ties by token).
func Leases(events []Event, deaths []Death) []Lease {
	died := map[string]int64{}
	for _, d := range deaths {
		if old, ok := died[d.Process]; !ok || d.Time < old {
			died[d.Process] = d.Time
		}
	}
	byID := map[string]*Lease{}
	get := func(e Event) *Lease {
		l := byID[e.Lease]
		if l == nil {
			l = &Lease{ID: e.Lease, Process: e.Process, Lock: e.Lock}
			byID[e.Lease] = l
		}
		return l
	}
	first := func(at *int64, t int64) {
		if *at == 0 || t < *at {
			*at = t
		}
	}
	for _, e := range events {
		switch e.Kind {
		case AcquireInvoked:
			l := get(e)
			first(&l.AcquireInvoked, e.Time)
			l.AutoRenew = l.AutoRenew || e.Renew
			if l.TTL == 0 {
				l.TTL = e.TTL
			}
		case Granted:
			l := get(e)
			first(&l.Granted, e.Time)
			l.Token = e.Token
			if e.TTL != 0 {
				l.TTL = e.TTL
			}
		case Done:
			first(&get(e).Done, e.Time)
		case ReleaseInvoked:
			first(&get(e).ReleaseInvoked, e.Time)
		case ReleaseReturned:
			first(&get(e).ReleaseReturned, e.Time)
		}
	}
	var out []Lease
	for _, l := range byID {
		if l.Granted == 0 {
			continue // never granted: nothing to judge
		}
		l.ValidUntil = never
		end := func(t int64, by string) {
			if t != 0 && t < l.ValidUntil {
				l.ValidUntil, l.EndedBy = t, by
			}
		}
		end(l.ReleaseInvoked, "release")
		end(l.Done, "done")
		if !l.AutoRenew && l.TTL > 0 && l.AcquireInvoked != 0 {
			end(l.AcquireInvoked+int64(l.TTL), "ttl")
		}
		if t, ok := died[l.Process]; ok && t >= l.Granted {
			l.Died = t
			end(t, "death")
		}
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Lease) int {
		return cmp.Or(cmp.Compare(a.Granted, b.Granted), cmp.Compare(a.Token, b.Token), cmp.Compare(a.ID, b.ID))
	})
	return out
}
