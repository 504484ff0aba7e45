package components

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/protoconv"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// respond answers the current request if it has a sender; a request sent
// with Send (no sender) gets no answer, by protoactor's design.
func respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

// subscriberPID is the PID named in a request, or its sender.
func subscriberPID(ctx actor.Context, s *subscriptionv1.Subscriber) *actor.PID {
	if s.GetId() != "" {
		return actor.NewPID(s.GetAddress(), s.GetId())
	}
	return ctx.Sender()
}

// rejectUnknown answers a message the actor does not serve with an
// invalid-argument Status, so a caller gets an error instead of a timeout,
// and the actor keeps running. Lifecycle messages are ignored.
func rejectUnknown(ctx actor.Context, msg any) {
	switch msg.(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage, *actor.Terminated, *actor.ReceiveTimeout:
		return
	}
	if ctx.Sender() == nil {
		ctx.Logger().Debug("baton: dropped unknown message without sender", "message", protoconv.MessageName(msg))
		return
	}
	ctx.Respond(statusv1.FromError(backends.Invalid("message", protoconv.MessageName(msg),
		"not served by "+ctx.Self().Id)))
}

// actorOpError keeps a backend call that ran out of the actor's own
// OpTimeout from reading as the caller's deadline on the way back: it is
// ErrUnavailable and no longer matches context.DeadlineExceeded, and its
// text says whose timeout it was. (The status mapping sends an error that
// is both as CODE_UNAVAILABLE anyway.)
func actorOpError(err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &actorTimeout{text: err.Error()}
}

// actorTimeout is a backend call that ran out of the actor's OpTimeout. It
// matches ErrUnavailable only (not context.DeadlineExceeded).
type actorTimeout struct{ text string }

func (e *actorTimeout) Error() string {
	if strings.Contains(e.text, backends.ErrUnavailable.Error()) {
		return e.text + " (operation timed out in the actor)"
	}
	return e.text + ": operation timed out in the actor: " + backends.ErrUnavailable.Error()
}

func (e *actorTimeout) Unwrap() error { return backends.ErrUnavailable }

// newHandle returns a random id for a lease or leadership: random rather
// than counted, so a handle kept across an actor restart can never name a
// newer grant.
func newHandle() string { return rand.Text() }

// durationOf reads an optional duration field; negative or malformed
// values are invalid arguments.
func durationOf(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, backends.Invalid(field, d.String(), err.Error())
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, backends.Invalid(field, v, "must not be negative")
	}
	return v, nil
}

// withdrawn is the answer to a request withdrawn with CancelRequest.
func withdrawn(what, name string) error {
	return fmt.Errorf("%s %q: request withdrawn: %w", what, name, context.Canceled)
}

// claimRequestID checks that a requester-chosen id is valid and not inUse,
// and makes one up when none was given (the request then cannot be
// cancelled).
func claimRequestID(id string, inUse func(id string) bool) (string, error) {
	if id == "" {
		return "auto-" + rand.Text(), nil
	}
	if len(id) > backends.MaxNameLen {
		return "", backends.Invalid("request_id", id, fmt.Sprintf("longer than %d bytes", backends.MaxNameLen))
	}
	if inUse(id) {
		return "", backends.Invalid("request_id", id, "already in use")
	}
	return id, nil
}
