package linearize

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/baton-go/baton/backends"
)

// Received is one event a watcher got, and when (on the Recorder's clock).
type Received struct {
	At    time.Duration
	Event backends.ConfigEvent
}

// Write is a write to the watched range made after the watch began:
// acknowledged, or with an unknown outcome.
type Write struct {
	Key, Value string
	// Version is the version written; 0 when unknown (an unconditional
	// Set through the node facade reports none, and a write with an
	// unknown outcome none either).
	Version uint64
	// Acked: the write answered success. Return is not used otherwise.
	Acked        bool
	Call, Return time.Duration
}

// WatchHistory is what CheckWatch judges: one watcher's events and the
// writes to its range. Values must be unique per write, as for Check.
type WatchHistory struct {
	// Initial is the state of the watched range when the watch began.
	Initial []backends.ConfigItem
	// Events are what the watcher received, in order.
	Events []Received
	// Writes are the writes to the range after the watch began.
	Writes []Write
	// Final is the state of the range once the writes ended, read after
	// the watcher caught up.
	Final []backends.ConfigItem
}

// ViolationKind names what a watch got wrong.
type ViolationKind int

// The violations CheckWatch reports.
const (
	// Reordered: a key's event did not carry a higher version than the
	// key's previous event (or its initial version).
	Reordered ViolationKind = iota + 1
	// Diverged: the events folded into a view do not end at Final.
	Diverged
	// Missed: an acknowledged write was neither delivered nor in a gap
	// that a ConfigResync covers.
	Missed
	// Phantom: a Put of a value no write wrote, or at another version than
	// its write answered.
	Phantom
)

func (k ViolationKind) String() string {
	switch k {
	case Reordered:
		return "reordered"
	case Diverged:
		return "diverged"
	case Missed:
		return "missed"
	case Phantom:
		return "phantom"
	}
	return "unknown"
}

// Violation is one thing a watch got wrong.
type Violation struct {
	Kind   ViolationKind
	Key    string
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("%s %q: %s", v.Kind, v.Key, v.Detail) }

// Fold applies events to initial, the way a watcher keeps a view: a Put
// sets its item, a Delete removes the key, a ConfigResync changes nothing
// itself (the difference that follows it does).
func Fold(initial []backends.ConfigItem, events []Received) map[string]backends.ConfigItem {
	view := make(map[string]backends.ConfigItem, len(initial))
	for _, it := range initial {
		view[it.Key] = it
	}
	for _, r := range events {
		switch r.Event.Type {
		case backends.ConfigPut:
			view[r.Event.Item.Key] = r.Event.Item
		case backends.ConfigDelete:
			delete(view, r.Event.Item.Key)
		}
	}
	return view
}

// delivery is one Put or Delete of a key, at its place among all events.
type delivery struct {
	index int
	event backends.ConfigEvent
}

// CheckWatch judges one watcher (see the ViolationKinds for what is
// checked) and returns what it got wrong, in a stable order.
//
// When is an acknowledged write that was not delivered excused? A
// watcher's Puts and Deletes of one key, d1 … dn in the order received,
// split the key's history into gaps: before d1 (after the initial state),
// between consecutive ones, after dn. A write missing from the events must
// lie in a gap during which the watcher received a ConfigResync: a resync
// replaces what was missed with the difference to the current state, so
// writes superseded within it are legitimately never seen. With a known
// version the write's gap is found by version. Without one (a facade Set)
// it is found by time: the write may lie in the gap from di to di+1 only
// if it returned no earlier than the write of di was called and was called
// no later than the write of di+1 returned; it is excused when one such
// gap has a resync. Unknown bounds (an initial state, a Delete, a write
// with an unknown outcome) are taken as open, so a store that behaves is
// never blamed.
func CheckWatch(h WatchHistory) []Violation {
	var out []Violation
	report := func(kind ViolationKind, key, format string, args ...any) {
		out = append(out, Violation{Kind: kind, Key: key, Detail: fmt.Sprintf(format, args...)})
	}

	initial := map[string]uint64{}
	for _, it := range h.Initial {
		initial[it.Key] = it.Version
	}
	writes := map[string]Write{} // by value
	for _, w := range h.Writes {
		writes[w.Value] = w
	}
	var resyncs []int // indexes of ConfigResync events
	byKey := map[string][]delivery{}
	for i, r := range h.Events {
		switch r.Event.Type {
		case backends.ConfigResync:
			resyncs = append(resyncs, i)
		case backends.ConfigPut, backends.ConfigDelete:
			k := r.Event.Item.Key
			byKey[k] = append(byKey[k], delivery{index: i, event: r.Event})
		}
	}

	// Versions per key strictly increase; Puts name a write's value and
	// version.
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		prev := initial[k]
		for _, d := range byKey[k] {
			it := d.event.Item
			if it.Version <= prev {
				report(Reordered, k, "event %d (%s %q) at version %d after version %d", d.index, d.event.Type, it.Value, it.Version, prev)
			}
			prev = max(prev, it.Version)
			if d.event.Type != backends.ConfigPut {
				continue
			}
			w, ok := writes[it.Value]
			switch {
			case !ok || w.Key != k:
				report(Phantom, k, "event %d puts %q at version %d, which no write wrote", d.index, it.Value, it.Version)
			case w.Version != 0 && w.Version != it.Version:
				report(Phantom, k, "event %d puts %q at version %d, written at version %d", d.index, it.Value, it.Version, w.Version)
			}
		}
	}

	// The view ends at the final state.
	view := Fold(h.Initial, h.Events)
	final := map[string]backends.ConfigItem{}
	for _, it := range h.Final {
		final[it.Key] = it
	}
	all := make([]string, 0, len(view)+len(final))
	for k := range view {
		all = append(all, k)
	}
	for k := range final {
		if _, ok := view[k]; !ok {
			all = append(all, k)
		}
	}
	slices.Sort(all)
	for _, k := range all {
		got, inView := view[k]
		want, inFinal := final[k]
		switch {
		case !inFinal:
			report(Diverged, k, "view holds %q@%d, the store has no such key", got.Value, got.Version)
		case !inView:
			report(Diverged, k, "view lacks the key, the store has %q@%d", want.Value, want.Version)
		case got.Value != want.Value || got.Version != want.Version:
			report(Diverged, k, "view holds %q@%d, the store %q@%d", got.Value, got.Version, want.Value, want.Version)
		}
	}

	// Every acknowledged write was delivered or lies in a resynced gap.
	resyncBetween := func(a, b int) bool { // a resync with index in (a, b)
		i, _ := slices.BinarySearch(resyncs, a+1)
		return i < len(resyncs) && resyncs[i] < b
	}
	for _, w := range h.Writes {
		if !w.Acked {
			continue
		}
		ds := byKey[w.Key]
		if slices.ContainsFunc(ds, func(d delivery) bool {
			return d.event.Type == backends.ConfigPut && d.event.Item.Value == w.Value
		}) {
			continue
		}
		if w.Version != 0 && w.Version <= initial[w.Key] {
			continue // older than the watch
		}
		// Gap g lies between ds[g-1] and ds[g]; index -1 is the initial
		// state, len(h.Events) the end.
		bounds := func(g int) (from, to int) {
			from, to = -1, len(h.Events)
			if g > 0 {
				from = ds[g-1].index
			}
			if g < len(ds) {
				to = ds[g].index
			}
			return from, to
		}
		excused := false
		if w.Version != 0 {
			g := 0
			for g < len(ds) && ds[g].event.Item.Version < w.Version {
				g++
			}
			excused = resyncBetween(bounds(g))
		} else {
			for g := 0; g <= len(ds) && !excused; g++ {
				lo, hi := time.Duration(math.MinInt64), time.Duration(math.MaxInt64)
				if g > 0 {
					if pw, ok := writtenBy(writes, ds[g-1].event); ok {
						lo = pw.Call
					}
				}
				if g < len(ds) {
					if nw, ok := writtenBy(writes, ds[g].event); ok && nw.Acked {
						hi = nw.Return
					}
				}
				excused = lo <= w.Return && w.Call <= hi && resyncBetween(bounds(g))
			}
		}
		if !excused {
			v := "unknown version"
			if w.Version != 0 {
				v = fmt.Sprintf("version %d", w.Version)
			}
			report(Missed, w.Key, "acknowledged write %q (%s, returned at %v) never delivered, and no resync covers it", w.Value, v, w.Return)
		}
	}
	return out
}

// writtenBy returns the write whose value a Put delivered.
func writtenBy(writes map[string]Write, ev backends.ConfigEvent) (Write, bool) {
	if ev.Type != backends.ConfigPut {
		return Write{}, false
	}
	w, ok := writes[ev.Item.Value]
	return w, ok
}
