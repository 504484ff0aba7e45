package components

import "time"

// LockSettings changes the hot-reloadable settings of a running lock actor
// (sent by the runtime when the config center changes).
type LockSettings struct {
	// DefaultTTL is the lease TTL of acquisitions that give none; > 0.
	DefaultTTL time.Duration
}

// DiscoverySettings changes the hot-reloadable settings of a running
// discovery actor.
type DiscoverySettings struct {
	// DefaultTTL is the registration TTL of registrations that give none;
	// > 0.
	DefaultTTL time.Duration
}
