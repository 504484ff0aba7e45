package backends

import (
	"errors"
	"fmt"
)

// The sentinel errors shared by every implementation (Redis, etcd, the actor
// facades and the cluster). Implementations wrap them with %w and add context;
// callers test them with errors.Is, never by comparing strings.
var (
	// ErrNotFound: the key, service, leader or item does not exist (or expired).
	ErrNotFound = errors.New("baton: not found")
	// ErrNotObtained: TryAcquire found the lock held by someone else.
	ErrNotObtained = errors.New("baton: lock not obtained")
	// ErrNotHeld: Release/Refresh/Resign on a lease or leadership that is no
	// longer held by this owner (expired, released, taken over).
	ErrNotHeld = errors.New("baton: not held")
	// ErrConflict: a compare-and-set lost against a concurrent writer.
	ErrConflict = errors.New("baton: conflict")
	// ErrUnavailable: the backend cannot be reached (down, partitioned,
	// connector not yet connected).
	ErrUnavailable = errors.New("baton: backend unavailable")
	// ErrInvalidArgument: bad key, value, TTL, name or configuration. The
	// wrapping *InvalidArgumentError names the field and the value.
	ErrInvalidArgument = errors.New("baton: invalid argument")
	// ErrClosed: the component, connector or node has been closed/stopped.
	ErrClosed = errors.New("baton: closed")
	// ErrCompacted: a watch could not resume from the requested version because
	// the backend no longer has that history; the watcher must resync.
	ErrCompacted = errors.New("baton: history compacted")
	// ErrNotSupported: the implementation lacks the requested capability.
	ErrNotSupported = errors.New("baton: not supported")
	// ErrUnauthenticated: the backend refused the credentials (a wrong or
	// missing password, an unknown user: Redis NOAUTH and WRONGPASS, etcd
	// authentication failures). It is a configuration error: trying again
	// with the same settings does not help, so the connector supervisor
	// retries it only slowly (see actors.ConnectorSupervisorConfig).
	ErrUnauthenticated = errors.New("baton: unauthenticated")
)

// Sentinels lists every sentinel error, in a stable order. The messages
// package maps each one to a status code one-to-one.
var Sentinels = []error{
	ErrNotFound, ErrNotObtained, ErrNotHeld, ErrConflict, ErrUnavailable,
	ErrInvalidArgument, ErrClosed, ErrCompacted, ErrNotSupported,
	ErrUnauthenticated,
}

// InvalidArgumentError says which field was rejected, with which value and why.
// It matches ErrInvalidArgument under errors.Is.
type InvalidArgumentError struct {
	Field  string // e.g. "key", "ttl", "redis.url"
	Value  string // the offending value, quoted and shortened for display
	Reason string // e.g. "must not be empty"
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("baton: invalid argument: %s %s: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is ErrInvalidArgument.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// Invalid builds an *InvalidArgumentError. value is formatted with %q when it
// is a string and %v otherwise, and cut to 64 characters.
func Invalid(field string, value any, reason string) error {
	var v string
	switch x := value.(type) {
	case string:
		if len(x) > 64 {
			x = x[:61] + "..."
		}
		v = fmt.Sprintf("%q", x)
	case []byte:
		v = fmt.Sprintf("(%d bytes)", len(x))
	default:
		v = fmt.Sprintf("%v", x)
	}
	return &InvalidArgumentError{Field: field, Value: v, Reason: reason}
}

// Unavailable wraps cause so that it matches ErrUnavailable and still carries
// the backend's own error text. The sentinel appears once: a cause that
// already matches ErrUnavailable is only prefixed with op.
func Unavailable(op string, cause error) error {
	switch {
	case cause == nil:
		return fmt.Errorf("%s: %w", op, ErrUnavailable)
	case errors.Is(cause, ErrUnavailable):
		return fmt.Errorf("%s: %w", op, cause)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, cause)
}

// Unauthenticated wraps the server's refusal of the credentials so that it
// matches ErrUnauthenticated and keeps the server's text.
func Unauthenticated(op string, cause error) error {
	switch {
	case cause == nil:
		return fmt.Errorf("%s: %w", op, ErrUnauthenticated)
	case errors.Is(cause, ErrUnauthenticated):
		return fmt.Errorf("%s: %w", op, cause)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnauthenticated, cause)
}

// Refused reports whether err is a refusal of the configuration rather than
// a failure to reach the backend: the server rejected the credentials
// (ErrUnauthenticated) or a setting (ErrInvalidArgument, e.g. a Redis DB
// index the server does not have). Retrying such an error with the same
// settings cannot succeed.
func Refused(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrInvalidArgument)
}
