package statusv1_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/baton-go/baton/backends"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nonSentinelCodes are the codes that stand for no backends sentinel.
var nonSentinelCodes = map[statusv1.Code]error{
	statusv1.Code_CODE_DEADLINE_EXCEEDED: context.DeadlineExceeded,
	statusv1.Code_CODE_CANCELED:          context.Canceled,
	statusv1.Code_CODE_INTERNAL:          statusv1.ErrInternal,
}

// TestEverySentinelHasItsOwnCode fails when a sentinel is added to
// backends.Sentinels without a code, or two sentinels share one.
func TestEverySentinelHasItsOwnCode(t *testing.T) {
	seen := map[statusv1.Code]error{}
	for _, sentinel := range backends.Sentinels {
		st := statusv1.FromError(sentinel)
		code := st.GetCode()
		assert.NotContains(t, []statusv1.Code{
			statusv1.Code_CODE_UNSPECIFIED, statusv1.Code_CODE_OK,
		}, code, "sentinel %q", sentinel)
		_, special := nonSentinelCodes[code]
		assert.False(t, special, "sentinel %q has no code of its own (got %s)", sentinel, code)
		if prev, dup := seen[code]; dup {
			t.Errorf("sentinels %q and %q share code %s", prev, sentinel, code)
		}
		seen[code] = sentinel
		assert.Equal(t, sentinel.Error(), st.GetMessage())

		err := st.Err()
		require.Error(t, err)
		for _, other := range backends.Sentinels {
			assert.Equal(t, other == sentinel, errors.Is(err, other),
				"Err() of %s against sentinel %q", code, other)
		}
		assert.Equal(t, sentinel.Error(), err.Error(), "text must not be doubled")
		assert.Equal(t, code, statusv1.FromError(err).GetCode(), "round trip")
	}
	assert.Len(t, seen, len(backends.Sentinels))
}

// TestEveryCodeHasOneError walks the enum, so a code added to the proto
// without a mapping fails here.
func TestEveryCodeHasOneError(t *testing.T) {
	codes := make([]int, 0, len(statusv1.Code_name))
	for n := range statusv1.Code_name {
		codes = append(codes, int(n))
	}
	sort.Ints(codes)

	sentinelCodes := 0
	for _, n := range codes {
		code := statusv1.Code(n)
		if code == statusv1.Code_CODE_UNSPECIFIED || code == statusv1.Code_CODE_OK {
			continue
		}
		err := (&statusv1.Status{Code: code, Message: "m"}).Err()
		require.Error(t, err, code.String())
		assert.Equal(t, code, statusv1.FromError(err).GetCode(), "round trip of %s", code)

		var matched []error
		for _, sentinel := range backends.Sentinels {
			if errors.Is(err, sentinel) {
				matched = append(matched, sentinel)
			}
		}
		if want, ok := nonSentinelCodes[code]; ok {
			assert.ErrorIs(t, err, want, code.String())
			assert.Empty(t, matched, "%s must match no backends sentinel", code)
			continue
		}
		sentinelCodes++
		assert.Len(t, matched, 1, "%s must match exactly one backends sentinel", code)
	}
	assert.Equal(t, len(backends.Sentinels), sentinelCodes,
		"codes standing for sentinels and backends.Sentinels must correspond one-to-one")
}

func TestOK(t *testing.T) {
	st := statusv1.FromError(nil)
	assert.Equal(t, statusv1.Code_CODE_OK, st.GetCode())
	assert.Empty(t, st.GetMessage())
	require.NoError(t, st.Err())
	require.NoError(t, statusv1.OK().Err())
}

func TestMissingOrUnknownStatusIsInternal(t *testing.T) {
	var missing *statusv1.Status
	for name, st := range map[string]*statusv1.Status{
		"nil":         missing,
		"unspecified": {},
		"unknown":     {Code: 99, Message: "from a newer peer"},
	} {
		t.Run(name, func(t *testing.T) {
			err := st.Err()
			require.ErrorIs(t, err, statusv1.ErrInternal)
			assert.Equal(t, statusv1.Code_CODE_INTERNAL, statusv1.FromError(err).GetCode())
			for _, sentinel := range backends.Sentinels {
				assert.NotErrorIs(t, err, sentinel)
			}
		})
	}
	assert.Equal(t, "unexpected status code 99: from a newer peer: baton: internal error",
		(&statusv1.Status{Code: 99, Message: "from a newer peer"}).Err().Error())
	assert.Equal(t, "response without status: baton: internal error", missing.Err().Error())
}

func TestFromError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code statusv1.Code
		is   error // what the rebuilt error must match
	}{
		{"wrapped sentinel", fmt.Errorf("get %q: %w", "k", backends.ErrNotFound), statusv1.Code_CODE_NOT_FOUND, backends.ErrNotFound},
		{"invalid argument", backends.Invalid("key", "", "must not be empty"), statusv1.Code_CODE_INVALID_ARGUMENT, backends.ErrInvalidArgument},
		{"unavailable with cause", backends.Unavailable("get", errors.New("connection refused")), statusv1.Code_CODE_UNAVAILABLE, backends.ErrUnavailable},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), statusv1.Code_CODE_DEADLINE_EXCEEDED, context.DeadlineExceeded},
		{"canceled", fmt.Errorf("campaign: %w", context.Canceled), statusv1.Code_CODE_CANCELED, context.Canceled},
		// Unavailable wins over the context errors: the deadline inside is
		// usually the backend's or the actor's, not the receiver's.
		{"unavailable within deadline", backends.Unavailable("get", context.DeadlineExceeded), statusv1.Code_CODE_UNAVAILABLE, backends.ErrUnavailable},
		{"unavailable and canceled", backends.Unavailable("get", context.Canceled), statusv1.Code_CODE_UNAVAILABLE, backends.ErrUnavailable},
		// A blocking acquire that gave up: why, not what.
		{"not obtained at the deadline", fmt.Errorf("acquire: %w: %w", backends.ErrNotObtained, context.DeadlineExceeded), statusv1.Code_CODE_DEADLINE_EXCEEDED, context.DeadlineExceeded},
		{"deadline wrapping unavailable", fmt.Errorf("%w: %w", context.DeadlineExceeded, backends.ErrUnavailable), statusv1.Code_CODE_UNAVAILABLE, backends.ErrUnavailable},
		{"unknown", errors.New("boom"), statusv1.Code_CODE_INTERNAL, statusv1.ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := statusv1.FromError(tt.err)
			assert.Equal(t, tt.code, st.GetCode())
			assert.Equal(t, tt.err.Error(), st.GetMessage())
			err := st.Err()
			require.ErrorIs(t, err, tt.is)
			assert.Equal(t, tt.code, statusv1.FromError(err).GetCode())
		})
	}
	// An unknown error keeps its text and gains the internal marker.
	assert.Equal(t, "boom: baton: internal error", statusv1.FromError(errors.New("boom")).Err().Error())
}

// TestUnavailableKeepsItsCode: an error that is both unavailable and a
// context error — as the etcd backend and the connector gate produce when
// a server stalls — arrives as ErrUnavailable and never as a bare context
// error, in whichever order the two were wrapped.
func TestUnavailableKeepsItsCode(t *testing.T) {
	gate := backends.Unavailable("etcd backend",
		backends.Unavailable("etcd: health check", fmt.Errorf("ping: %w", context.DeadlineExceeded)))
	for name, err := range map[string]error{
		"gate cause":       gate,
		"request timeout":  fmt.Errorf("etcd: get: %w: %w", backends.ErrUnavailable, context.DeadlineExceeded),
		"deadline outside": fmt.Errorf("wait: %w", fmt.Errorf("%w: %w", context.DeadlineExceeded, backends.ErrUnavailable)),
		"canceled":         backends.Unavailable("redis: get", context.Canceled),
	} {
		t.Run(name, func(t *testing.T) {
			st := statusv1.FromError(err)
			assert.Equal(t, statusv1.Code_CODE_UNAVAILABLE, st.GetCode())
			b, merr := proto.Marshal(st)
			require.NoError(t, merr)
			out := &statusv1.Status{}
			require.NoError(t, proto.Unmarshal(b, out))
			got := out.Err()
			require.ErrorIs(t, got, backends.ErrUnavailable)
			assert.NotErrorIs(t, got, context.DeadlineExceeded, "the receiver's own context decides that")
			assert.NotErrorIs(t, got, context.Canceled)
			assert.Equal(t, err.Error(), got.Error(), "the text travels unchanged")
		})
	}
}

func TestErrText(t *testing.T) {
	// A message that already names the sentinel is used as it is.
	st := statusv1.FromError(fmt.Errorf("get %q: %w", "k", backends.ErrNotFound))
	assert.Equal(t, `get "k": baton: not found`, st.Err().Error())
	// A hand-written message gains the sentinel's text.
	st = &statusv1.Status{Code: statusv1.Code_CODE_NOT_FOUND, Message: "no such key"}
	assert.Equal(t, "no such key: baton: not found", st.Err().Error())
	// No message: the sentinel's text alone.
	st = &statusv1.Status{Code: statusv1.Code_CODE_CONFLICT}
	assert.Equal(t, "baton: conflict", st.Err().Error())
}

// TestWireRoundTrip checks that the mapping survives serialization, as it
// must between nodes.
func TestWireRoundTrip(t *testing.T) {
	for _, sentinel := range backends.Sentinels {
		in := statusv1.FromError(fmt.Errorf("op: %w", sentinel))
		b, err := proto.Marshal(in)
		require.NoError(t, err)
		out := &statusv1.Status{}
		require.NoError(t, proto.Unmarshal(b, out))
		assert.True(t, proto.Equal(in, out))
		assert.ErrorIs(t, out.Err(), sentinel)
		assert.Equal(t, "op: "+sentinel.Error(), out.Err().Error())
	}
}

// TestInvalidArgumentDetailSurvivesTheWire: the field, value and reason of
// an invalid argument reach the other side of an actor or a node.
func TestInvalidArgumentDetailSurvivesTheWire(t *testing.T) {
	orig := fmt.Errorf("cache get: %w", backends.Invalid("key", "a\x00b", "contains a NUL byte"))
	wire, err := proto.Marshal(statusv1.FromError(orig))
	if err != nil {
		t.Fatal(err)
	}
	var st statusv1.Status
	if err := proto.Unmarshal(wire, &st); err != nil {
		t.Fatal(err)
	}
	got := st.Err()
	var ia *backends.InvalidArgumentError
	if !errors.As(got, &ia) {
		t.Fatalf("errors.As(%v) found no *InvalidArgumentError", got)
	}
	if ia.Field != "key" || ia.Reason != "contains a NUL byte" {
		t.Fatalf("detail = %+v", ia)
	}
	if !errors.Is(got, backends.ErrInvalidArgument) {
		t.Fatalf("%v does not match ErrInvalidArgument", got)
	}
}
