package components

import (
	"context"
	"errors"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

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
