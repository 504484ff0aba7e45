// Package harness starts real Redis and etcd servers for tests: no mocks, loopback only, one
// private temp directory per server, everything stopped by t.Cleanup.
//
// It is an ordinary (non-test) package so that the tests of any package can import it:
//
//	func TestCache(t *testing.T) {
//		rds := harness.StartRedis(t)                // redis-server on 127.0.0.1:<free port>
//		client := redis.NewClient(&redis.Options{Addr: rds.Addr()})
//		t.Cleanup(func() { _ = client.Close() })
//		// ... exercise the backend ...
//		rds.Restart() // same port, empty data (the server runs without persistence)
//	}
//
//	func TestLock(t *testing.T) {
//		etcd := harness.StartEtcd(t) // embedded etcd, in this process
//		client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints()})
//		// ...
//	}
//
// # Servers
//
// [StartRedis] runs the redis-server binary (Debian package redis-server; run `make deps` or
// `apt-get install -y redis-server`; a missing binary fails the test, it is never skipped) with
// --bind 127.0.0.1, no RDB snapshots, no AOF and protected mode off. Its log file lives in the
// server's temp dir. [WithRedisPassword] makes it require a password (the harness's own
// readiness probe authenticates); [WithRedisArgs] passes further arguments.
//
// etcd comes in two flavours behind the one type [Etcd]:
//
//   - [StartEtcd] runs the server in the test process with go.etcd.io/etcd/server/v3/embed. It is
//     the cheap default. Stop closes the server gracefully.
//   - [StartEtcdProcess] runs the same server as a separate OS process (the helper command
//     integration/cmd/etcd-server, built once per test binary with `go build`, cached under
//     os.TempDir()). Stop sends SIGKILL, so it is the one for fault tests: kill -9 the member,
//     then Start it again on the same ports and data dir.
//
// Both are single-member clusters with client and peer URLs on free 127.0.0.1 ports, the data
// dir in a temp dir, the gRPC gateway off and auto compaction off (history is compacted only by
// [Etcd.CompactNow] or a client's Compact call). [Etcd.Endpoints] returns "127.0.0.1:port"
// strings, the form clientv3.Config.Endpoints accepts.
//
// # Lifecycle
//
// Stop, Start and Restart keep the address: a restarted server listens on the same port(s).
// A restarted etcd keeps its data (same data dir); [Etcd.Wipe] stops it and deletes the data
// dir so that the next Start begins with an empty store. A restarted Redis is empty, unless it
// runs [WithRedisAOF] (an fsync per write: a SIGKILLed server comes back with every write it
// acknowledged); [Redis.Wipe] deletes its files, for a restart with empty data.
// Stop on a stopped server and Start on a running one do nothing. Pause freezes a server in
// its own process (StartRedis, StartEtcdProcess) with SIGSTOP and Resume thaws it (SIGCONT):
// a stalled server that keeps its connections, the fault that timeouts rather than refused
// connections must handle. These methods report
// failures with t.Fatalf on the testing.TB given to the Start* function, so call them from
// the test goroutine.
//
// Waiting is bounded polling (10s for Redis, 30s for etcd readiness), never a bare sleep. No
// server writes to the test's stdout or stderr: logs go to files in the server's temp dir,
// and a server that fails to start fails the test with the tail of its log.
//
// # Network faults and node processes
//
// [StartProxy] puts a TCP proxy on a loopback port between a client and a server: it adds
// latency, blackholes the traffic (a partition that keeps the connections open, so only the
// peers' own timeouts notice) and resets every connection, without root or a network
// namespace. [StartNodeProcess] runs a Baton node (the command integration/cmd/clusternode,
// built once per test binary) as a process of its own, driven through its stdin and stdout,
// which Pause freezes with SIGSTOP and Kill ends with SIGKILL: a holder that stops while it
// holds a lock.
//
// # Programs
//
// Programs that have no testing.TB (the benchmark in integration/bench) use [LaunchRedis],
// [LaunchEtcd] and [LaunchEtcdProcess]: the same servers, returned with an error instead of
// failing a test, in a temp dir that [Redis.Close] / [Etcd.Close] remove. Stop, Start and
// Restart on such a server panic where a test's server would fail the test.
//
// # Providers
//
// Servers come from one of two providers. The local-process provider described above is the
// default and the one CI uses. The testcontainers provider runs the same servers in Docker
// containers instead, through testcontainers-go:
//
//	BATON_TEST_CONTAINERS=1 go test -tags containers ./...
//
// It is used only when all three hold: BATON_TEST_CONTAINERS=1, the test binary was built with
// the containers build tag (without it, testcontainers-go is neither compiled nor downloaded),
// and a Docker engine answers testcontainers' health check within 5s (checked once per test
// binary). Otherwise the harness logs on the test why it uses local processes instead (no
// build tag, or no Docker engine and the error) and carries on; without BATON_TEST_CONTAINERS
// it says nothing.
//
// Containers keep the lifecycle contract above. Each publishes its client port on a fixed,
// free 127.0.0.1 host port (so the engine must run on this machine), which Docker keeps across
// stop and start, so Stop, Start and Restart keep the address. Redis (image redis:7) runs
// without persistence and is stopped with SIGKILL, so it restarts empty. etcd (image
// gcr.io/etcd-development/etcd at the version of the server module in go.mod) keeps its data
// in the container, which Stop and Start keep; Wipe removes the container, and the next Start
// creates an empty one on the same port. StartEtcd's container stops with SIGTERM,
// StartEtcdProcess's with SIGKILL. BATON_TEST_REDIS_IMAGE and BATON_TEST_ETCD_IMAGE override
// the images. WithRedisBinary does not apply to a container and is ignored with a note in the
// test log. Container lifecycle messages go to the test log; testcontainers' process-wide log
// is discarded.
package harness
