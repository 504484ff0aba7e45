// Package redis implements the backends interfaces on Redis with go-redis v9:
// one Connector per node owns the shared client, and Cache, Locker, Elector,
// Discovery and ConfigCenter take that client from it at call time.
//
// The shortest correct use:
//
//	conn, err := redis.NewConnector(redis.Config{URL: "redis://127.0.0.1:6379/0"}, logger)
//	if err != nil { ... }                      // bad config: backends.ErrInvalidArgument
//	if err := conn.Connect(ctx); err != nil { ... } // unreachable: backends.ErrUnavailable
//	defer conn.Disconnect(context.Background())
//
//	ns := backends.Namespace{Env: "prod"}
//	cache, _ := redis.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: "users"})
//	_ = cache.Set(ctx, "42", []byte("ada"), time.Minute)
//
//	locks, _ := redis.NewLocker(conn, backends.LockerOptions{Namespace: ns})
//	defer locks.Close()
//	lease, err := locks.Acquire(ctx, "billing", backends.LockOptions{TTL: 10 * time.Second, AutoRenew: true})
//	if err != nil { ... }
//	defer lease.Release(context.Background())
//	// pass lease.Token() to the storage you protect; watch lease.Done().
//
// # Connector
//
// Config picks the topology: MasterName → Sentinel failover, several Addrs →
// Redis Cluster, otherwise one server; a redis:// or rediss:// URL replaces
// the address, DB and credentials (rediss turns TLS on). Defaults favour
// failing fast over hanging: 2s dial timeout, one dial attempt per try, 2
// command retries, and the caller's context deadline bounds every command.
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
// # Cache
//
// Entries are plain strings at <root>/<env>/cache/<name>/<key>. TTLs use PX
// (millisecond precision, rounded up). GetMany, SetMany and DoBatch use one
// pipeline of single-key commands, so they work across Redis Cluster slots.
// Clear runs SCAN MATCH on the glob-escaped prefix (a cache named "a*" never
// matches cache "ab") and UNLINKs in batches of 500; on Redis Cluster every
// master is scanned. It never uses FLUSHDB.
//
// # Locks
//
// A lock named N lives at <root>/<env>/lock/{N}/: "owner" holds a per-attempt
// nonce and the owner (so owner checks never confuse two acquisitions with
// the same Owner string), "fence" is the fencing counter. The {N} hash tag
// puts both keys of a lock in one Cluster slot, as the Lua scripts require;
// '%' and '}' in names are percent-encoded inside the tag. Acquire, Release
// and Refresh are single scripts (embedded .lua files): acquire takes a free
// key with SET PX and bumps the counter in the same step, so tokens strictly
// increase per name. A missing counter is seeded from the server clock in
// microseconds, so tokens keep increasing even when Redis lost its data
// (restart without persistence, eviction) — as long as the server clock does
// not go backwards.
//
// A blocked Acquire waits for the release notification (Release publishes
// on <prefix>released). Each Locker holds one PSUBSCRIBE on its namespace's
// lock channels, opened before the first try, and fans messages out to its
// waiters, so a wake-up costs no extra connection and no round trip. Expiry
// publishes nothing, so a waiter also retries after min(remaining TTL, 1s)
// ±10% jitter; after a lost subscription every waiter is woken to retry.
//
// Ordering: there is no FIFO guarantee. Every waiter woken by a release
// races for the lock (on this node and across nodes); the first script to
// arrive wins and a waiter can lose repeatedly. Use a lock grain in the
// cluster layer when fairness matters.
//
// Hand-off: a lease is a backends.Handoffer. Handoff runs one script that
// checks the holder, bumps the counter and stores the new holder with its
// TTL; the key is never deleted and nothing is published, so blocked
// waiters elsewhere keep waiting. The lock actor serves its FIFO this way,
// and releases the lock for real after LockActorConfig.HandoffLimit of
// continuous hand-offs so that waiters of other processes are not starved.
//
// A lease's Done closes on Release, on a Refresh or auto-renewal that finds
// the lock gone, or when its TTL passes without a successful refresh — the
// local timer starts before the acquire request is sent, so Done never
// closes later than Redis lets the key expire. AutoRenew refreshes at TTL/3.
// A blocked Acquire returns ErrUnavailable when Redis cannot be reached; it
// does not keep waiting through an outage. One that gives up (ctx ended)
// wraps ctx.Err() and ErrNotObtained.
//
// A lost reply: when an acquire, hand-off or campaign script got no answer
// (the caller's deadline, a dropped connection, a stalled server), it may
// have run, or may still run — a server stopped with SIGSTOP or stuck in a
// long pause runs what was sent to it when it continues. The grant is then
// given back in the background with the release (resign) script, retried
// with backoff until it removes the grant — for as long as the server does
// not answer, and for one second more once it answers that the grant is
// not there (what was queued for it runs by then) — so the lock is not
// left to nobody for a TTL and the caller still returns at its deadline. The holder value is a
// fresh nonce per attempt, so a give-back can never free anyone else's lock.
//
// # Elections
//
// An election E keeps "<candidate id>|<epoch>|<value>" at
// <root>/<env>/election/{E}/leader with a PX TTL (ElectorOptions.TTL, default
// 10s) that the leader renews at TTL/3; the epoch counter beside it is bumped
// by the script that takes leadership (seeded from the server clock like the
// fencing counter). Take-over and Resign publish on <prefix>events.
// Candidates and observers wake on those messages, and otherwise re-check
// when the current leader key would expire, at most every TTL/4 (±10%). A
// leader whose process dies (renewals stop) is therefore replaced within
// about one TTL; its own Done closes when its local TTL passes without a
// successful renewal. Like locks, candidates are not served in FIFO order.
package redis
