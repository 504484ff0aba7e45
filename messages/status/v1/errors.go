package statusv1

import (
	"context"
	"errors"
	"strings"

	"github.com/baton-go/baton/backends"
)

// ErrInternal is what Err returns for CODE_INTERNAL, and for a status that
// is missing, unspecified or carries a code this version does not know.
var ErrInternal = errors.New("baton: internal error")

// codeErrors maps codes to errors. Its order is the precedence FromError
// uses when an error matches several entries: the backends sentinels that
// name a cause first, unavailable among them, then the context errors,
// then not-obtained, then internal.
//
// Not-obtained comes after the context errors because it is an outcome,
// not a cause: a blocking acquire that gave up at its deadline did not get
// the lock (the backends wrap both), and the wire reports why —
// CODE_DEADLINE_EXCEEDED, as AcquireRequest.timeout promises.
//
// Unavailable comes before the context errors on purpose. A backend that
// could not be reached in time often yields an error that matches both
// ErrUnavailable and context.DeadlineExceeded (etcd's request timeout,
// a health check that ran out, the connector gate's cause), and the
// deadline in it is rarely the caller's: it is the backend's or the
// actor's own. Reported as CODE_DEADLINE_EXCEEDED it would reach a caller
// whose context still has time left as a bare deadline error, and
// errors.Is(err, ErrUnavailable) would be false — the one thing that
// caller must be able to test. A caller whose own deadline did pass still
// sees context.DeadlineExceeded: actors.Request adds its context's error
// to a failure that arrives after that context ended.
var codeErrors = []struct {
	code Code
	err  error
}{
	{Code_CODE_NOT_FOUND, backends.ErrNotFound},
	{Code_CODE_NOT_HELD, backends.ErrNotHeld},
	{Code_CODE_CONFLICT, backends.ErrConflict},
	{Code_CODE_INVALID_ARGUMENT, backends.ErrInvalidArgument},
	{Code_CODE_CLOSED, backends.ErrClosed},
	{Code_CODE_COMPACTED, backends.ErrCompacted},
	{Code_CODE_NOT_SUPPORTED, backends.ErrNotSupported},
	{Code_CODE_UNAUTHENTICATED, backends.ErrUnauthenticated},
	{Code_CODE_UNAVAILABLE, backends.ErrUnavailable},
	{Code_CODE_CANCELED, context.Canceled},
	{Code_CODE_DEADLINE_EXCEEDED, context.DeadlineExceeded},
	{Code_CODE_NOT_OBTAINED, backends.ErrNotObtained},
	{Code_CODE_INTERNAL, ErrInternal},
}

// OK returns a new success status.
func OK() *Status { return &Status{Code: Code_CODE_OK} }

// FromError turns the outcome of a backend call into a Status: nil is
// CODE_OK; an error matching a backends sentinel, context.Canceled,
// context.DeadlineExceeded or ErrInternal under errors.Is gets that code;
// anything else is CODE_INTERNAL. The message is err.Error(). An error
// that matches several gets the first in codeErrors' order: a backends
// sentinel wins over a context error, so an unreachable backend whose
// wait ran into some deadline is CODE_UNAVAILABLE — except ErrNotObtained,
// which a context error wins over (a wait that gave up).
func FromError(err error) *Status {
	if err == nil {
		return OK()
	}
	for _, ce := range codeErrors {
		if errors.Is(err, ce.err) {
			st := &Status{Code: ce.code, Message: err.Error()}
			var ia *backends.InvalidArgumentError
			if ce.code == Code_CODE_INVALID_ARGUMENT && errors.As(err, &ia) {
				st.InvalidArgument = &InvalidArgument{Field: ia.Field, Value: ia.Value, Reason: ia.Reason}
			}
			return st
		}
	}
	return &Status{Code: Code_CODE_INTERNAL, Message: err.Error()}
}

// Err turns a Status back into an error: nil for CODE_OK, otherwise an
// error that matches the code's sentinel under errors.Is (a backends
// sentinel, context.Canceled, context.DeadlineExceeded or ErrInternal) and
// whose text is the status message. A nil, unspecified or unknown status
// yields ErrInternal, so a response that forgot its status never passes
// as success.
func (x *Status) Err() error {
	code := x.GetCode()
	if code == Code_CODE_OK {
		return nil
	}
	for _, ce := range codeErrors {
		if ce.code == code {
			e := &statusError{msg: x.GetMessage(), sentinel: ce.err}
			if ia := x.GetInvalidArgument(); code == Code_CODE_INVALID_ARGUMENT && ia != nil {
				e.detail = &backends.InvalidArgumentError{Field: ia.GetField(), Value: ia.GetValue(), Reason: ia.GetReason()}
			}
			return e
		}
	}
	msg := "unexpected status code " + code.String()
	if x == nil {
		msg = "response without status"
	}
	if m := x.GetMessage(); m != "" {
		msg += ": " + m
	}
	return &statusError{msg: msg, sentinel: ErrInternal}
}

// statusError is an error rebuilt from a Status. It unwraps to the
// sentinel, so errors.Is works as it did where the error was made.
type statusError struct {
	msg      string
	sentinel error
	detail   error // *backends.InvalidArgumentError, when the status carried one
}

// Error returns the message, adding the sentinel's text only when the
// message does not already contain it (FromError's messages usually do).
func (e *statusError) Error() string {
	s := e.sentinel.Error()
	switch {
	case e.msg == "":
		return s
	case strings.Contains(e.msg, s):
		return e.msg
	default:
		return e.msg + ": " + s
	}
}

// Unwrap returns the sentinel and, for invalid arguments, the rebuilt
// *backends.InvalidArgumentError (which errors.As finds).
func (e *statusError) Unwrap() []error {
	if e.detail != nil {
		return []error{e.detail, e.sentinel}
	}
	return []error{e.sentinel}
}
