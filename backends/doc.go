// Package backends is Baton's abstraction layer: the interfaces of the five
// coordination components (Connector, Cache, Locker/Elector, ServiceDiscovery,
// ConfigCenter), their value types and options, the sentinel errors every
// implementation shares, the key layout and input validation.
//
// Implementations live in sub-packages — backends/redis and backends/etcd —
// and the actor-backed facades of package runtime implement the same
// interfaces; backends/conformance holds the one behavioural suite they all
// pass. Two optional capabilities are found by type assertion: CacheBatcher
// (many cache operations in one round trip) and Handoffer (a held lock
// passed to its next owner in one write); Adopter and Detacher move a held
// lock between Lockers.
//
// Helpers that work on any implementation, through these interfaces only,
// have packages of their own: backends/typed (a Cache of Go values through
// a codec), backends/layered (system, component and instance layers of
// configuration), backends/bind (a Go value kept in step with a config
// prefix) and backends/snapshot (config reads served from a local file
// while the backend is down).
//
// # Lifecycle
//
// Every component embeds io.Closer. Close stops the component's background
// work (auto-renewal, keep-alives, watches, sweepers) and releases what it
// still holds (locks, leaderships, registrations), best effort within a
// short bound. It does not disconnect the shared Connector. Close is
// idempotent; other calls after it return ErrClosed, except on a component
// that holds nothing (a Cache), whose Close may leave it usable.
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
