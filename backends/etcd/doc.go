// Package etcd implements the backends interfaces on etcd v3
// (go.etcd.io/etcd/client/v3): a Connector that owns the one shared
// *clientv3.Client of a process, and Cache, Locker, Elector, Discovery and
// ConfigCenter built on it. Example shows the shortest correct use.
//
// Components take the client from the Connector at every call, so they
// follow a reconnect and report ErrUnavailable (not connected, server
// unreachable) or ErrClosed (disconnected) instead of hanging. Every single
// round trip is bounded by Config.RequestTimeout unless the caller's ctx
// ends sooner. While every endpoint is failing, calls fail at once with
// ErrUnavailable; the client is back within about 2s of etcd answering
// again. etcd's zap logger is silenced; logs go to the injected
// *slog.Logger.
//
// # What each component guarantees here
//
//   - Cache: an entry with a TTL is missing for reads from its deadline on,
//     as this node's clock sees it; etcd deletes it up to about 2s later
//     (entries share leases by expiry second). Values are arbitrary bytes.
//     Clear deletes the cache's own prefix in one request; DoBatch keeps the
//     order of operations.
//   - Locks: every contender has its own key and lease (TTL rounded up to
//     whole seconds, at least 2s); the oldest holds the lock, its create
//     revision is the fencing token, and waiters are served in order. Done
//     closes on Release, when the key or lease is lost, and at once when
//     the connector is disconnected. A cancelled Acquire removes its key
//     before it returns. A hold that was lost is revoked in the background,
//     so a restarted etcd does not keep the lock blocked for a TTL. Leases
//     are backends.Handoffer and backends.Detacher, Lockers
//     backends.Adopter; a hand-off never overtakes a contender already
//     queued in etcd.
//   - Elections: the same queue as locks; a leader that stops renewing is
//     replaced by the next candidate within the TTL.
//   - Discovery and ConfigCenter: a watch resumes from the last revision it
//     delivered, and after a compaction or a server that lost its data it
//     re-reads and sends exactly the difference. Config history is kept
//     apart from etcd's MVCC history, so compaction does not remove it.
//
// Held locks and leaderships survive an outage shorter than their TTL when
// AutoRenew (or a Refresh) keeps them alive. How all of this is built is
// described in docs/backends.md of the repository.
package etcd
