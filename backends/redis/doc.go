// Package redis implements the backends interfaces on Redis with go-redis v9:
// one Connector per process owns the shared client, and Cache, Locker,
// Elector, Discovery and ConfigCenter take that client from it at every
// call. Example shows the shortest correct use.
//
// # Connector
//
// Config picks the topology: MasterName → Sentinel failover, several Addrs →
// Redis Cluster, otherwise one server; a redis:// or rediss:// URL replaces
// the address, DB and credentials (rediss turns TLS on). Defaults favour
// failing fast over hanging: a 2s dial timeout, one dial attempt per try,
// no command retries (Config.MaxRetries; a resent script could apply
// twice), and the caller's context deadline bounds every command.
// HealthCheck is a PING bounded by ctx and HealthCheckTimeout (2s). After
// Disconnect every component fails with backends.ErrClosed until the next
// Connect; before the first Connect with backends.ErrUnavailable.
//
// go-redis logs through one process-wide logger. NewConnector routes it to
// the most recent non-nil *slog.Logger it was given (debug level); until
// then it is dropped, so nothing is printed by default.
//
// # Errors
//
// redis.Nil becomes backends.ErrNotFound; a closed client ErrClosed;
// transport failures and "not serving" replies (LOADING, READONLY,
// CLUSTERDOWN, MASTERDOWN, TRYAGAIN, BUSY) ErrUnavailable, with the go-redis
// error kept in the chain. When the caller's context ends, the error wraps
// that context error (errors.Is(err, context.Canceled) holds).
//
// # What each component guarantees here
//
//   - Cache: entries are plain strings at <root>/<env>/cache/<name>/<key>
//     with millisecond TTLs (rounded up). GetMany, SetMany and DoBatch are
//     one pipeline and work across Cluster slots; Clear removes the cache's
//     own keys only and never uses FLUSHDB.
//   - Locks: fencing tokens strictly increase per name, also after Redis
//     lost its data, as long as the server clock does not go backwards.
//     Waiters are not served in order: every release wakes them and the
//     first to arrive wins. A lease's Done closes no later than Redis
//     expires its key; a blocked Acquire fails with ErrUnavailable during an
//     outage rather than waiting through it. A grant whose reply was lost is
//     given back in the background, so it does not block the lock for a
//     TTL. Leases are backends.Handoffer and backends.Detacher, Lockers
//     backends.Adopter.
//   - Elections: a leader whose process died is replaced within about one
//     TTL (ElectorOptions.TTL, default 10s); candidates are not served in
//     order.
//   - Discovery and ConfigCenter: every change is logged in a stream, and a
//     watch resumes from the last change it delivered, or re-reads and
//     sends the difference when the log no longer reaches back. Each watch
//     holds one pooled connection while it waits.
//
// How these are built — key layouts, the Lua scripts, release
// notifications, the give-back of a lost reply — is described in
// docs/backends.md of the repository.
package redis
