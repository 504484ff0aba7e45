// Package integration holds Baton's tests against real servers: the
// conformance wiring that runs the one behavioural suite of
// backends/conformance against every implementation, end-to-end tests and
// fault tests (servers killed, restarted, wiped, watch history compacted).
//
// Servers come from the harness subpackage (a real redis-server process and a
// real etcd, on free loopback ports); nothing is mocked. Lock histories
// recorded across node processes are judged by integration/internal/history
// (see TestReliabilityClusterLocks, part of the reliability suite: build tag
// reliability, `make reliability`). The package itself has no API: everything is in
// its tests.
//
//	go test ./integration/ -run TestConformance -v
//
// runs every suite against every implementation, with subtests named
// TestConformance/<implementation>/<component>/<case>, e.g.
// TestConformance/etcd/lock/wake-latency.
package integration
