package linearize

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
)

// Kind is the call an Op made.
type Kind uint8

// The calls of a history.
const (
	Get Kind = iota + 1
	Set
	CompareAndSet
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Set:
		return "set"
	case CompareAndSet:
		return "cas"
	}
	return "unknown"
}

// Outcome is what a call answered.
type Outcome uint8

// Outcomes. Unknown is a call that may or may not have taken effect.
const (
	// OK: Get found the key, Set wrote, CompareAndSet wrote.
	OK Outcome = iota + 1
	// NotFound: Get found no key.
	NotFound
	// Conflict: CompareAndSet found another version.
	Conflict
	// Unknown: the call failed with ErrUnavailable or a deadline.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case NotFound:
		return "not-found"
	case Conflict:
		return "conflict"
	case Unknown:
		return "unknown"
	}
	return "?"
}

// Op is one call on the key as its client saw it. Times are durations since
// the Recorder started, on one monotonic clock.
type Op struct {
	Client int
	Kind   Kind
	// Value is what Set and CompareAndSet write; unique per write.
	Value string
	// ExpectedVersion is CompareAndSet's expected version (0: the key must
	// not exist) and ExpectedValue the value the client saw with it.
	ExpectedVersion uint64
	ExpectedValue   string
	Call, Return    time.Duration
	Outcome         Outcome
	// ReadValue and Version: what Get read; for CompareAndSet the version
	// it wrote. Zero otherwise.
	ReadValue string
	Version   uint64
}

// IsWrite reports whether op is a Set or a CompareAndSet.
func (op Op) IsWrite() bool { return op.Kind == Set || op.Kind == CompareAndSet }

func (op Op) String() string {
	switch op.Kind {
	case Get:
		if op.Outcome == OK {
			return fmt.Sprintf("c%d get -> %q@%d", op.Client, op.ReadValue, op.Version)
		}
		return fmt.Sprintf("c%d get -> %s", op.Client, op.Outcome)
	case Set:
		return fmt.Sprintf("c%d set %q -> %s", op.Client, op.Value, op.Outcome)
	case CompareAndSet:
		s := fmt.Sprintf("c%d cas %q if %q@%d -> %s", op.Client, op.Value, op.ExpectedValue, op.ExpectedVersion, op.Outcome)
		if op.Outcome == OK {
			s += fmt.Sprintf("@%d", op.Version)
		}
		return s
	}
	return "?"
}

// Recorder collects the Ops of concurrent clients. It is safe for
// concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts a history's clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the time since the Recorder started.
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Begin returns an Op of client and kind that is called now. The caller
// fills in Value and the expectation before making the call.
func (r *Recorder) Begin(client int, kind Kind) Op {
	return Op{Client: client, Kind: kind, Call: r.Now()}
}

// EndGet records the answer of a Get begun with op. The error says that
// err was of a kind a Get must not answer; op is then recorded as Unknown.
func (r *Recorder) EndGet(op Op, it backends.ConfigItem, err error) error {
	op.Return = r.Now()
	var bad error
	switch {
	case err == nil:
		op.Outcome, op.ReadValue, op.Version = OK, it.Value, it.Version
	case errors.Is(err, backends.ErrNotFound):
		op.Outcome = NotFound
	default:
		op.Outcome, bad = Unknown, unexpected(err)
	}
	r.add(op)
	return bad
}

// EndSet records the answer of a Set begun with op, like EndGet.
func (r *Recorder) EndSet(op Op, err error) error {
	op.Return = r.Now()
	var bad error
	if err == nil {
		op.Outcome = OK
	} else {
		op.Outcome, bad = Unknown, unexpected(err)
	}
	r.add(op)
	return bad
}

// EndCompareAndSet records the answer of a CompareAndSet begun with op,
// like EndGet; it.Version is the version written.
func (r *Recorder) EndCompareAndSet(op Op, it backends.ConfigItem, err error) error {
	op.Return = r.Now()
	var bad error
	switch {
	case err == nil:
		op.Outcome, op.Version = OK, it.Version
	case errors.Is(err, backends.ErrConflict):
		op.Outcome = Conflict
	default:
		op.Outcome, bad = Unknown, unexpected(err)
	}
	r.add(op)
	return bad
}

// unexpected is nil for the errors that leave an outcome open — the backend
// was unavailable or the call ran out of time — and names any other.
func unexpected(err error) error {
	if errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("linearize: unexpected error: %w", err)
}

func (r *Recorder) add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns the recorded Ops, ordered by call time.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	ops := slices.Clone(r.ops)
	r.mu.Unlock()
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	return ops
}
