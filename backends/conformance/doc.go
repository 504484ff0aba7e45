// Package conformance is the one behavioural suite every implementation of
// the backends interfaces passes: backends/redis, backends/etcd, the actor
// facades of package runtime and the cluster. The same cases run against
// each of them; an implementation differs only in how its Target builds
// components.
//
// There is one suite per interface — RunCache, RunLock, RunElection,
// RunDiscovery, RunConfig — and Run, which runs every suite whose factory the
// Target sets. Wire a Target from a test package that can start servers
// (integration does):
//
//	func TestConformance(t *testing.T) {
//		for _, target := range []conformance.Target{redisTarget(t), etcdTarget(t)} {
//			t.Run(target.Name, func(t *testing.T) { conformance.Run(t, target) })
//		}
//	}
//
// Subtests are named <implementation>/<component>/<case>, e.g.
// TestConformance/redis/lock/fencing-tokens, so one case of one
// implementation can be run with -run.
//
// # Rules the suites keep
//
//   - Every case works in an environment (Namespace.Env) of its own, so cases
//     never see each other's keys and most of them run in parallel. Cases
//     that measure time or load the machine run serially, before the parallel
//     ones of their suite start.
//   - Every component a case builds stands for a separate process: the Target
//     gives it its own connector, and the Crash returned with it kills that
//     process without releasing anything.
//   - Expiry is tested with 2 s TTLs (etcd's minimum lease) and bounded
//     polling, never with bare sleeps.
//   - Errors are checked with errors.Is against the backends sentinels.
//   - Run fails when a suite, or a whole Target, ran zero cases. Suites run
//     their cases through runCases, which counts them.
//   - Run orders the suites cache, lock, election, discovery, config. Fault
//     cases that stop or wipe Target.Server belong to the last two, so a
//     restart never disturbs a case of another component.
package conformance
