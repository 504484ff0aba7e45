package backends

import (
	"context"
	"strings"
	"time"
)

// LeaseRecord names a held lease in its backend: enough for another Locker
// of the same namespace — in another process — to take over the lease's
// bookkeeping (renewal, release, loss detection) while the lock stays held.
// Cluster lock grains use it when a lock name's grain moves to another
// node: the holder keeps its lease, and the grain's next activation adopts
// it instead of the lock ever being given up.
type LeaseRecord struct {
	// Name is the lock name.
	Name string
	// Owner is the lease's owner.
	Owner string
	// Token is the lease's fencing token.
	Token uint64
	// TTL is the lease's TTL (what Refresh with 0 restarts).
	TTL time.Duration
	// Handle is backend-specific and opaque: Redis keeps the holder value
	// stored under the lock, etcd the contender key's suffix.
	Handle string
}

// MaxLeaseHandleLen bounds LeaseRecord.Handle.
const MaxLeaseHandleLen = 512

// Validate checks a record before a backend looks it up.
func (r LeaseRecord) Validate() error {
	if err := ValidateName("lock name", r.Name); err != nil {
		return err
	}
	switch {
	case r.Handle == "":
		return Invalid("lease handle", r.Handle, "must not be empty")
	case len(r.Handle) > MaxLeaseHandleLen:
		return Invalid("lease handle", len(r.Handle), "longer than 512 bytes")
	case strings.ContainsAny(r.Handle, "/\x00"):
		return Invalid("lease handle", r.Handle, "must not contain '/' or NUL")
	case r.Token == 0:
		return Invalid("lease token", r.Token, "must not be 0")
	}
	return validatePositiveTTL("lease ttl", r.TTL)
}

// Detacher is implemented by leases whose bookkeeping can move to another
// Locker (see Adopter). Both backends' leases implement it.
type Detacher interface {
	// Record returns what an Adopter needs to take the lease over.
	Record() LeaseRecord
	// Detach stops this Locker's bookkeeping of the lease — local expiry,
	// auto-renewal, monitoring — without any backend call: the lock stays
	// held until the record's adopter releases it or its TTL runs out. The
	// lease's Done closes; later calls on it report ErrNotHeld, and the
	// Locker's Close no longer releases it.
	Detach()
}

// Adopter is implemented by Lockers that take over a lease held in their
// backend from its record. Both backends implement it.
type Adopter interface {
	// Adopt verifies in the backend that rec's lease still holds its lock
	// and returns a lease for it, as if this Locker had granted it: same
	// name, owner, token and TTL, released, refreshed and monitored by this
	// Locker from now on. It does not extend the lease: it expires when the
	// backend would have expired it, unless refreshed (or autoRenew is set).
	//
	// Errors: ErrNotHeld when the backend no longer holds the lock for rec
	// (released, expired, handed on); ErrInvalidArgument for a malformed
	// record.
	Adopt(ctx context.Context, rec LeaseRecord, autoRenew bool) (Lease, error)
}
