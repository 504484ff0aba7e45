// Package history records what lock holders did and what a protected
// resource saw, and judges the record: were leases of one lock ever valid
// at the same time, did fencing tokens go backwards, did the resource accept
// a write it should have fenced off.
//
// It is an ordinary (non-test) package so that any test or program can
// build histories and check them. The cluster history test
// (integration/cluster_history_test.go) collects events from several node
// processes, all on one machine and so on one clock:
//
//	res, err := history.StartResource()            // HTTP on 127.0.0.1, fences by token
//	defer res.Close()
//	// … holders append Events (acquire-invoked, granted, done, release-invoked,
//	// write-invoked, …) and post their writes to res.URL() …
//	events = append(events, res.Events()...)       // write-accepted / write-rejected
//	rep := history.CheckLocks(events, deaths)
//	if !rep.OK() { t.Errorf("%s", rep) }
//
// # When a lease is valid
//
// A lease is valid from the moment its Acquire returned (the granted event)
// until the earliest of:
//
//   - its Release was invoked (not when the reply came: a holder's interval
//     ends when it calls Release);
//   - its holder observed Done closed;
//   - its acquire-invoked time plus its TTL, unless it auto-renews: a holder
//     must stop using a lease by then on its own clock, and a paused process
//     cannot observe Done, so this deadline is the contract;
//   - its process died (Death).
//
// A lease with none of these is valid until the end of the history.
//
// # Rules
//
//   - Double grant: a lease of a lock granted at t while another lease of
//     the same lock, granted earlier (or at t), is still valid at t. Both
//     leases are named.
//   - Token regression: a lock's grants in order of grant time must carry
//     strictly increasing tokens.
//   - Stale write accepted: the resource accepted a write with token T at w
//     although a grant of the same lock with a token above T had returned
//     before w. Fencing with "token ≥ highest accepted" cannot reject such a
//     write before the newer holder has written, so a holder that is paused
//     between its own deadline check and its write, just as the next holder
//     is granted, trips this rule too; the violation says whether the writer's
//     lease was still valid when it wrote.
package history
