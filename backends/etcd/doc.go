// Package etcd implements Baton's coordination components on etcd v3
// (go.etcd.io/etcd/client/v3): a Connector that owns the one shared
// *clientv3.Client of a node, and Cache, Locker, Elector, ServiceDiscovery
// and ConfigCenter built on it.
//
// The shortest correct use:
//
//	conn, err := etcd.NewConnector(etcd.Config{Endpoints: []string{"127.0.0.1:2379"}}, nil)
//	if err != nil { … }
//	if err := conn.Connect(ctx); err != nil { … }
//	defer conn.Disconnect(context.Background())
//	cache, err := etcd.NewCache(conn, backends.CacheOptions{
//		Namespace: backends.Namespace{Env: "dev"}, Name: "sessions"})
//	_ = cache.Set(ctx, "user:1", []byte("…"), time.Minute)
//
// Components take the client from the Connector at call time, so they follow
// a reconnect and report ErrUnavailable (not connected, server unreachable)
// or ErrClosed (disconnected) instead of hanging. Every single round trip is
// bounded by Config.RequestTimeout unless the caller's ctx ends sooner: etcd's
// client otherwise waits for a ready connection for as long as ctx allows.
// etcd's zap logger is silenced; logs go to the injected *slog.Logger.
//
// # Cache TTLs and their granularity
//
// etcd expires keys only through leases, and a lease per key would cost a
// grant per write and a lease per entry on the server. Entries with a TTL
// therefore share leases by expiry bucket:
//
//   - An entry written at time t with TTL d has the deadline t+d, stored with
//     the value (a 10-byte header: magic, version, deadline in Unix
//     nanoseconds). Reads treat an entry past its deadline as missing
//     (Get → ErrNotFound, Exists → false, absent from GetMany), so entries
//     expire exactly on time as seen by this node's clock — even though etcd
//     removes them a little later.
//   - The deadline is rounded up to the next whole second of wall-clock time
//     (the bucket, 1s granularity). All entries whose deadline falls in the
//     same bucket share one lease, granted with TTL
//     max(2s, ceil(bucket − now, 1s)) — etcd grants no lease shorter than
//     about 2s — so the lease never ends before any of its entries' deadlines.
//   - etcd deletes the entries when their lease expires: between 0 and about
//     2s after the deadline (1s bucket rounding, the 2s minimum for very short
//     TTLs, plus etcd's own expiry check interval). Until then they still
//     occupy space and show in raw etcd reads, never through this package.
//   - Leases are granted lazily, reused while live, forgotten once expired,
//     and a write that races a lease's expiry is retried once with a fresh
//     lease. Clock skew between nodes shifts when other nodes consider an
//     entry expired by that skew.
//
// Values are arbitrary bytes (NUL included). Clear deletes the cache's own
// prefix in one request. DoBatch (the actor's auto-pipelining) runs operations
// in Txn chunks of at most 128 operations (etcd's default --max-txn-ops); a
// chunk never writes the same key twice (etcd refuses that), so repeated keys
// start a new chunk and the order of operations is preserved.
//
// # Locks
//
// A lock is a set of keys <root>/<env>/lock/<name>/<lease id hex>, one per
// contender, each attached to its own lease with the lock's TTL (rounded up
// to whole seconds, minimum 2s). The contender whose key has the lowest
// create revision holds the lock; that revision is the fencing token, so it
// strictly increases per lock name. A waiter watches only its immediate
// predecessor's key for deletion, starting at the revision it read, so the
// hand-over needs no polling and waiters are served in FIFO order. Refresh
// with the original TTL is a lease keep-alive; with a different TTL the key
// is moved to a freshly granted lease in one transaction guarded by the key's
// create revision (the token stays the same, the key keeps its name), because
// etcd cannot change the TTL of an existing lease; the old lease is then
// revoked. AutoRenew keeps the lease alive with clientv3's KeepAlive (every
// TTL/3). Done closes on Release, when the key is deleted (lease expired,
// removed by hand), when auto-renewal finds the lease gone, and at once when
// the connector is disconnected (nothing can renew or release through it).
// A cancelled Acquire revokes its lease, which removes its key, before it
// returns an error wrapping ctx.Err() and ErrNotObtained.
//
// A lost hold (lock or leadership) is given up for good: its lease is
// revoked in the background, retried (backoff up to 1s) through the
// connector's current client until etcd answers. Losing a hold because
// etcd stopped answering does not remove its key, and an etcd that restarts
// renews every lease to its full TTL, so without the revoke the lock or
// election would stay blocked for a TTL after the server is back. Close
// ends the retries; what is left then expires by its TTL.
//
// Hand-off: a lease is a backends.Handoffer. Handoff renews the lease with
// a keep-alive (no write), then commits one transaction guarded by our
// key's create revision and by every key under the lock having a create
// revision no higher than ours: it deletes our key and puts the new
// owner's key <lease id hex>.<old token hex> on the same lease, whose create
// revision is the new token. When another contender already queues in etcd
// the guard fails and Handoff returns ErrNotObtained with nothing changed,
// so etcd's FIFO is never overtaken. A new owner whose TTL rounds to
// another number of seconds gets a freshly granted lease (one more write)
// and the old lease is revoked.
//
// # Elections
//
// Elections use the same queue as locks under <root>/<env>/election/<name>/:
// each Campaign adds a key holding the candidate's value on its own lease
// (the session: ElectorOptions.TTL, rounded up to whole seconds, minimum 2s,
// always kept alive in the background), and the oldest key leads; the epoch
// is its create revision. Done closes on Resign, when the key or session is
// lost, or when the connector is disconnected. A leader that stops renewing
// is replaced by the next candidate within the TTL. etcd's
// client/v3/concurrency.Election is not used because its Observe never
// reports "no leader" and its Campaign cleans up with an unbounded context.
//
// # Outages
//
// While every endpoint's connection is failing (gRPC TransientFailure), calls
// fail at once with ErrUnavailable instead of waiting for their bound; a call
// already in flight when etcd dies waits at most RequestTimeout. HealthCheck
// also notices a connection failing during its probe, so it reports a killed
// server within milliseconds. gRPC's reconnect backoff is capped at 2s, so
// the client is back within about 2s of etcd answering again. Held locks and
// leaderships survive an outage shorter than their TTL when AutoRenew (or a
// Refresh) keeps them alive.
package etcd
