package backends

// Closer is implemented by every component implementation that runs
// background work (auto-renewal, keep-alives, watches, sweepers). Close stops
// that work and releases what the value still holds (locks, leaderships,
// registrations) best-effort within a short bound; it does not disconnect the
// shared Connector. Calls after Close return ErrClosed. Close is idempotent.
type Closer interface {
	Close() error
}
