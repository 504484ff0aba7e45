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
// server's temp dir.
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
// dir so that the next Start begins with an empty store. A restarted Redis is always empty.
// Stop on a stopped server and Start on a running one do nothing. These methods report
// failures with t.Fatalf on the testing.TB given to the Start* function, so call them from
// the test goroutine.
//
// Waiting is bounded polling (10s for Redis, 30s for etcd readiness), never a bare sleep. No
// server writes to the test's stdout or stderr: logs go to files in the server's temp dir,
// and a server that fails to start fails the test with the tail of its log.
//
// # Providers
//
// Only the local-process provider is compiled in. BATON_TEST_CONTAINERS=1 asks for the
// testcontainers provider, which this build does not include; the harness logs that and uses
// local processes (see provider).
package harness
