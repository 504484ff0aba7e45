// Command bench measures Baton's components side by side with the clients people use directly,
// against real servers it starts itself on loopback: a redis-server process and an etcd server
// process (integration/harness). It needs nothing but redis-server installed (`make deps`).
//
//	go run ./integration/bench                         # every scenario, 2s per cell, a table on stdout
//	go run ./integration/bench -duration 1s -json out.json
//	go run ./integration/bench -scenarios cache.get -callers 1,64
//
// A cell is one (scenario, backend, implementation, callers). The implementations of a
// scenario run in alternation — A, B, C, A, B, C — for -rounds rounds that split -duration
// between them, against the same servers, each after a short unmeasured warm-up. Latencies are
// per-operation wall times (time.Since around each call); allocs/op is the process-wide
// runtime.MemStats.Mallocs delta over a round divided by its operations, so it includes the
// actor system's and the clients' background work, as a user's process would.
//
// With -json every cell is written as one JSON object per line:
//
//	{"scenario":"cache.get","backend":"redis","impl":"baton","callers":64,
//	 "ops_per_sec":…,"p50_us":…,"p99_us":…,"allocs_per_op":…}
//
// plus a few optional fields (errors, samples, and for config.watch_fanout the memory and
// backend-watch counts per subscription). BENCHMARKS.md in the module root describes every
// scenario and holds the latest results. The program never fails on speed: it exits non-zero
// only when it cannot set up or run a scenario.
package main
