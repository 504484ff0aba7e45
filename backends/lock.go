package backends

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Locker grants named distributed locks. Names follow ValidateName.
//
// Every granted Lease carries a fencing token that strictly increases per
// lock name across all owners. Pass it to the resource you protect and
// reject writes carrying an older token.
type Locker interface {
	// Acquire blocks until the lock is obtained or ctx ends: then the error
	// wraps both ctx.Err() and ErrNotObtained (errors.Is holds for either:
	// why it gave up, and that it did not get the lock), and no stale entry
	// is left behind. It waits for the lock to be freed rather than
	// busy-polling.
	Acquire(ctx context.Context, name string, opts LockOptions) (Lease, error)
	// TryAcquire returns ErrNotObtained at once when the lock is held.
	// ErrNotObtained means the caller does not hold the lock: "held by
	// someone else" here, "gave up waiting" from Acquire.
	TryAcquire(ctx context.Context, name string, opts LockOptions) (Lease, error)
	// Close stops auto-renewal and releases the leases still held; see
	// Lifecycle in the package documentation.
	io.Closer
}

// LockOptions configures one acquisition.
type LockOptions struct {
	// TTL is how long the lock stays held without a Refresh.
	// Default: 15s. At least MinLockTTL (100ms) on every backend; on etcd
	// it is then rounded up to whole seconds, minimum 2s (etcd grants no
	// shorter lease).
	TTL time.Duration
	// Owner identifies the holder in Lease.Owner and in diagnostics.
	// Default: a random unique string.
	Owner string
	// AutoRenew keeps the lease alive (refreshing at TTL/3) until Release
	// or loss; Done() closes if a renewal finds the lock lost.
	AutoRenew bool
}

// DefaultLockTTL is used when LockOptions.TTL is zero.
const DefaultLockTTL = 15 * time.Second

// MinLockTTL is the shortest lock TTL accepted. A lease shorter than this
// can run out before its holder has even been told that it got the lock (a
// grant crosses a backend round trip and an actor hop; a loaded node or a
// GC pause adds tens of milliseconds), so it would protect nothing.
const MinLockTTL = 100 * time.Millisecond

// ValidateLockTTL checks a lock TTL: zero (the default) or at least
// MinLockTTL.
func ValidateLockTTL(field string, ttl time.Duration) error {
	if err := ValidateTTL(field, ttl); err != nil {
		return err
	}
	if ttl > 0 && ttl < MinLockTTL {
		return Invalid(field, ttl, fmt.Sprintf("below the minimum lock TTL of %v", MinLockTTL))
	}
	return nil
}

// Validate checks the options and returns a copy with defaults applied
// (Owner is left empty for the implementation to generate).
func (o LockOptions) Validate() (LockOptions, error) {
	if err := ValidateLockTTL("ttl", o.TTL); err != nil {
		return o, err
	}
	if o.TTL == 0 {
		o.TTL = DefaultLockTTL
	}
	if len(o.Owner) > MaxNameLen {
		return o, Invalid("owner", o.Owner, "longer than 128 bytes")
	}
	return o, nil
}

// Lease is a held lock.
type Lease interface {
	// Name is the lock name.
	Name() string
	// Owner is the holder's identity.
	Owner() string
	// TTL is the lease time granted (after backend rounding): at
	// acquisition, then by the last successful Refresh.
	TTL() time.Duration
	// Token is the fencing token: strictly increasing per lock name.
	Token() uint64
	// Refresh extends the lease to ttl from now (0 = its current TTL).
	// Afterwards TTL reports the new TTL. ErrNotHeld when the lock is no
	// longer ours.
	Refresh(ctx context.Context, ttl time.Duration) error
	// Release frees the lock. ErrNotHeld when it is no longer ours.
	Release(ctx context.Context) error
	// Done is closed when the lease ends: released, expired, revoked, or an
	// auto-renewal found it lost.
	Done() <-chan struct{}
}

// Handoffer is implemented by leases that can pass their lock straight to
// the next owner in one backend write, instead of a release followed by the
// next owner's acquire. Lock actors use it to serve their queued waiters:
// the lock never becomes free in between, so no other contender can slip in
// and nobody has to be woken.
type Handoffer interface {
	// Handoff ends this lease and grants the lock to a new owner described
	// by opts (TTL, Owner, AutoRenew as for Acquire) with a fresh, higher
	// fencing token. This lease's Done closes on success.
	//
	// Errors: ErrNotHeld when this lease no longer holds the lock (it is
	// over; nothing was granted). ErrNotObtained when other contenders
	// queue in the backend itself (etcd; their turn comes before the new
	// owner's): nothing changed, this lease is still held; release it
	// instead. Invalid options: nothing changed. Any other
	// error (server unreachable, ctx ended) leaves no grant behind — a
	// hand-off whose reply was lost is given back — but this lease may or
	// may not still hold the lock: Release it, which reports ErrNotHeld if
	// it did not.
	Handoff(ctx context.Context, opts LockOptions) (Lease, error)
}

// LockerOptions configures a Locker implementation.
type LockerOptions struct {
	// Namespace scopes the keys (root + env). Env is required.
	Namespace Namespace
}

// Elector runs leader elections. Names follow ValidateName.
type Elector interface {
	// Campaign blocks until this candidate becomes leader of election or ctx
	// ends. value is published as the leader's value (e.g. its address).
	Campaign(ctx context.Context, election, value string) (Leadership, error)
	// Leader returns the current leader, or ErrNotFound when there is none.
	Leader(ctx context.Context, election string) (LeaderInfo, error)
	// Observe sends the current leader (if any) and then every change until
	// ctx ends, when the channel is closed. A change to "no leader" is sent
	// as a LeaderInfo with an empty Value and Epoch 0.
	Observe(ctx context.Context, election string) (<-chan LeaderInfo, error)
	// Close stops renewals and resigns the leaderships still held; see
	// Lifecycle in the package documentation.
	io.Closer
}

// LeaderInfo describes a leader.
type LeaderInfo struct {
	Election string
	Value    string
	// Epoch strictly increases with every new leadership of an election.
	Epoch uint64
}

// Leadership is held leadership.
type Leadership interface {
	Election() string
	Value() string
	// Epoch is the fencing value of this leadership term.
	Epoch() uint64
	// Resign gives up leadership so the next candidate takes over.
	// ErrNotHeld when it was already lost.
	Resign(ctx context.Context) error
	// Done is closed when leadership ends (resigned, session expired).
	Done() <-chan struct{}
}

// ElectorOptions configures an Elector implementation.
type ElectorOptions struct {
	// Namespace scopes the keys (root + env). Env is required.
	Namespace Namespace
	// TTL is the leadership session TTL: a leader that stops renewing is
	// replaced after at most TTL. Default: 10s; etcd rounds up to whole
	// seconds, minimum 2s.
	TTL time.Duration
}

// DefaultElectionTTL is used when ElectorOptions.TTL is zero.
const DefaultElectionTTL = 10 * time.Second
