// Package linearize judges what clients of one config key saw. It has two
// checkers:
//
//   - [Check] decides whether a history of Get, Set and CompareAndSet calls
//     on one key is linearizable. The search is porcupine's
//     (github.com/anishathalye/porcupine); this package supplies the model of
//     the key and prepares the history for it.
//   - [CheckWatch] decides whether what one watcher received accounts for
//     the store: versions per key strictly increase, the events folded into
//     a view end at the store's final state, and every acknowledged write
//     was delivered or lies in a gap a ConfigResync covers.
//
// It is an ordinary (non-test) package so that its own tests can show each
// checker rejecting a broken history, and any test can use it:
//
//	h := linearize.NewRecorder()
//	op := h.Begin(client, linearize.Get)
//	it, err := cfg.GetItem(ctx, key)
//	h.EndGet(op, it, err)               // records outcome and return time
//	// … many clients, faults …
//	res := linearize.Check(h.Ops(), 30*time.Second)
//	if res.Verdict != porcupine.Ok { … }
//
// # Values and versions
//
// Versions of the Redis and etcd backends are opaque numbers that only
// increase, and an unconditional Set through the node facade reports none.
// So the model tracks values, not versions: every write in a history must
// write a value of its own (the recorders' callers make them unique), which
// makes "the state is the value X" the same as "the state is the write that
// wrote X". What versions are seen is checked beside the search: one value
// has one version, one version one value, and in any linearization each
// write whose version is known has a higher one than every known write
// before it.
//
// # Calls with an unknown outcome
//
// A call that failed with ErrUnavailable or ran out of its deadline may
// have taken effect or not, now or later (the config actor may still run it
// after the caller gave up). Such a Get is left out: it changes nothing. A
// write is kept with its return at the end of the history, so the search
// may place it anywhere after its call, or nowhere. One exception keeps the
// search tractable: a write with an unknown outcome whose value no call ever
// read is left out too, and a CompareAndSet that answered conflict while
// such a write was pending is allowed without a state to explain it. That
// can only let a history pass that is not linearizable (a spurious conflict
// near an outage goes unnoticed); it never rejects a linearizable one.
package linearize
