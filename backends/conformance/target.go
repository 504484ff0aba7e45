package conformance

import (
	"testing"

	"github.com/baton-go/baton/backends"
)

// Target is one implementation under test: the direct Redis and etcd
// backends, the actor facades, the cluster. Every suite runs the same cases
// against every Target.
//
// Each New* call builds a fresh component the way a separate process would
// (it may open its own connector) and registers its cleanup on t. The Crash
// returned with components that hold liveness (locks, leaderships,
// registrations) simulates that process dying: background work stops
// WITHOUT releasing anything (typically by disconnecting the component's own
// connector), so what it held must expire by TTL.
type Target struct {
	// Name is the implementation name used in subtest names
	// ("redis", "etcd", "actor-redis", …).
	Name string
	// Server controls the backend server behind the target.
	Server Server

	NewCache     func(t *testing.T, opts backends.CacheOptions) backends.Cache
	NewLocker    func(t *testing.T, opts backends.LockerOptions) (backends.Locker, Crash)
	NewElector   func(t *testing.T, opts backends.ElectorOptions) (backends.Elector, Crash)
	NewDiscovery func(t *testing.T, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, Crash)
	NewConfig    func(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter

	// LockHandoff says that the leases of NewLocker implement
	// backends.Handoffer: the lock suite then runs the hand-off cases too
	// (and fails if a lease is not one). The backends set it; the actor
	// and cluster targets hand off inside the lock actor instead.
	LockHandoff bool

	// Pending lists the cases this target is known to fail until a change
	// outside the suite lands, keyed "<component>/<case>" (for example
	// "lock/refresh-sets-ttl"), each with the reason. They are skipped
	// with that reason, so every run shows them, and stay part of the case
	// set; an entry that names no case fails the suite. Default: none.
	Pending map[string]string
}

// Crash simulates the death of the process owning a component.
type Crash func()

// Server is the backend server behind a Target, for fault cases.
type Server interface {
	// Stop makes the server unreachable (process killed). Start brings it
	// back on the same address; whether data survives depends on the backend
	// (etcd keeps it, the test Redis has no persistence and comes back empty).
	Stop()
	Start()
	// RestartEmpty restarts the server with no data at all.
	RestartEmpty()
	// ForceGap makes watch history unavailable: etcd compacts to the current
	// revision, Redis trims its change-log streams to nothing.
	ForceGap(t *testing.T)
}
