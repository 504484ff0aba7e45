// Package backends is Baton's abstraction layer: the interfaces of the five
// coordination components (Connector, Cache, Locker/Elector, ServiceDiscovery,
// ConfigCenter), their value types, the sentinel errors every implementation
// shares, the key layout and input validation.
//
// Implementations live in sub-packages — backends/redis and backends/etcd —
// and the actor-backed facades of package runtime implement the same
// interfaces; backends/conformance holds the one behavioural suite they all
// pass. Both backends also offer two optional capabilities, found by type
// assertion: CacheBatcher (many cache operations in one round trip) and
// Handoffer (a held lock passed to its next owner in one write).
//
// # Key layout
//
// Every key is <root>/<env>/<component>/<name>/<key>: root defaults to
// "baton", env (dev, test, prod, …) is required, component is one of cache,
// lock, election, discovery, config, and name is the cache/lock/service name.
// Names may not contain '/', so one namespace can never cover another; user
// keys are checked by ValidateKey (non-empty, no NUL, at most 512 bytes).
//
// # Errors
//
// Check errors with errors.Is against ErrNotFound, ErrNotObtained, ErrNotHeld,
// ErrConflict, ErrUnavailable, ErrInvalidArgument, ErrClosed, ErrCompacted and
// ErrNotSupported. Invalid input is reported as an *InvalidArgumentError that
// names the field and the value.
//
// # Time
//
// Every time is a time.Duration. A TTL of 0 means "no expiry" for cache
// entries and "the default" for locks, elections and registrations; a
// negative TTL is always rejected.
package backends
