package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
)

// DefaultRequestTimeout bounds a Request whose context has no deadline, so a
// lost reply can never hang a caller forever.
const DefaultRequestTimeout = 30 * time.Second

// Sender is what Request needs from a protoactor context: the root context
// (system.Root) or an actor's own context both satisfy it.
type Sender interface {
	ActorSystem() *actor.ActorSystem
	RequestWithCustomSender(pid *actor.PID, message any, sender *actor.PID)
}

// Request sends req to pid and waits for a reply of type Resp.
//
// Unlike protoactor's RequestFuture it takes a context: the wait ends when
// ctx is done (returning ctx.Err(), wrapped) and when ctx has no deadline,
// after DefaultRequestTimeout. A reply from a dead or unknown PID (dead
// letter) is ErrUnavailable; a reply of the wrong type is ErrInvalidArgument;
// a reply whose status field is not OK becomes the matching sentinel error
// (the response is still returned, for callers that want its fields). An
// ErrUnavailable reply that arrives after ctx ended also matches ctx.Err().
//
// No goroutine or timer is left behind: the reply is delivered straight into
// a one-slot channel registered as a process for the duration of the call.
func Request[Resp any](ctx context.Context, sender Sender, pid *actor.PID, req any) (Resp, error) {
	var zero Resp
	if rc, ok := sender.(*actor.RootContext); sender == nil || (ok && rc == nil) {
		return zero, fmt.Errorf("actors: request %T: no actor system (node not started): %w", req, backends.ErrClosed)
	}
	sys := sender.ActorSystem()
	if sys.IsStopped() {
		return zero, fmt.Errorf("actors: request %T: actor system stopped: %w", req, backends.ErrClosed)
	}
	if pid == nil {
		return zero, backends.Unavailable("actors: request", fmt.Errorf("nil pid"))
	}
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("actors: request %T: %w", req, err)
	}

	reply := newReplyProcess()
	replyPID, ok := sys.ProcessRegistry.Add(reply, "reply"+sys.ProcessRegistry.NextId())
	if !ok {
		return zero, fmt.Errorf("actors: could not register reply process: %w", backends.ErrClosed)
	}
	defer sys.ProcessRegistry.Remove(replyPID)

	sender.RequestWithCustomSender(pid, req, replyPID)

	var expired <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		timer := time.NewTimer(DefaultRequestTimeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-ctx.Done():
		return zero, fmt.Errorf("actors: no reply to %T from %s: %w", req, pid.Id, ctx.Err())
	case <-expired:
		return zero, fmt.Errorf("actors: no reply to %T from %s within %s: %w", req, pid.Id, DefaultRequestTimeout, context.DeadlineExceeded)
	case msg := <-reply.ch:
		resp, err := decodeReply[Resp](pid, req, msg)
		return resp, withCallerContext(ctx, err)
	}
}

// withCallerContext adds ctx's error to a failure that arrived after ctx
// ended, so errors.Is(err, context.DeadlineExceeded) holds for a caller
// whose own deadline passed — the status codes carry one error, and an
// unreachable backend is reported as ErrUnavailable even when its wait ran
// into that deadline. A caller whose ctx has time left gets the error as
// it was sent: never a deadline that is not its own.
func withCallerContext(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if err == nil || cerr == nil || errors.Is(err, cerr) || !errors.Is(err, backends.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", err, cerr)
}

func decodeReply[Resp any](pid *actor.PID, req any, msg any) (Resp, error) {
	var zero Resp
	op := fmt.Sprintf("actors: request %T", req)
	switch m := msg.(type) {
	case *actor.DeadLetterResponse:
		return zero, backends.Unavailable(op, fmt.Errorf("no actor at %s", pid.Id))
	case *actor.Terminated:
		return zero, backends.Unavailable(op, fmt.Errorf("actor %s stopped", pid.Id))
	case Resp:
		if st, ok := statusOf(m); ok {
			return m, st.Err()
		}
		return m, nil
	}
	// Another type carrying a failure status: the actor rejected an unknown
	// or malformed request.
	if st, ok := statusOf(msg); ok {
		if err := st.Err(); err != nil {
			return zero, err
		}
	}
	return zero, backends.Invalid("reply", fmt.Sprintf("%T", msg), fmt.Sprintf("unexpected reply to %T", req))
}

// replyProcess receives exactly one message for a pending Request.
type replyProcess struct {
	ch chan any
}

func newReplyProcess() *replyProcess { return &replyProcess{ch: make(chan any, 1)} }

func (p *replyProcess) deliver(message any) {
	select {
	case p.ch <- message:
	default: // a second reply (should not happen) is dropped: the caller took the first
	}
}

// SendUserMessage implements actor.Process.
func (p *replyProcess) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	p.deliver(msg)
}

// SendSystemMessage implements actor.Process. A Watch or Unwatch (sent when
// the reply PID was registered as a subscriber or holder) is not a reply.
func (p *replyProcess) SendSystemMessage(_ *actor.PID, message any) {
	switch message.(type) {
	case *actor.Watch, *actor.Unwatch:
		return
	}
	p.deliver(message)
}

// Stop implements actor.Process.
func (p *replyProcess) Stop(_ *actor.PID) {}
