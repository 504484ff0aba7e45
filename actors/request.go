package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/protoconv"
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
//
// Errors made here name the operation from the request message (for
// cachev1.GetRequest{Name: "sessions", Key: "k"}: `cache "sessions": get
// "k"`), followed by what went wrong and the sentinel, once. Errors the
// actor answered with are returned as the actor wrote them.
func Request[Resp proto.Message](ctx context.Context, sender Sender, pid *actor.PID, req proto.Message) (Resp, error) {
	var zero Resp
	if rc, ok := sender.(*actor.RootContext); sender == nil || (ok && rc == nil) {
		return zero, fmt.Errorf("%s: node not started: %w", describe(req), backends.ErrClosed)
	}
	sys := sender.ActorSystem()
	if sys.IsStopped() {
		return zero, fmt.Errorf("%s: node stopped: %w", describe(req), backends.ErrClosed)
	}
	if pid == nil {
		return zero, backends.Unavailable(describe(req), errors.New("no actor to ask"))
	}
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s: %w", describe(req), err)
	}

	reply := newReplyProcess()
	replyPID, ok := sys.ProcessRegistry.Add(reply, "reply"+sys.ProcessRegistry.NextId())
	if !ok {
		return zero, fmt.Errorf("%s: no reply slot: %w", describe(req), backends.ErrClosed)
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
		return zero, fmt.Errorf("%s: no reply from %s: %w", describe(req), pid.Id, ctx.Err())
	case <-expired:
		return zero, fmt.Errorf("%s: no reply from %s within %s: %w", describe(req), pid.Id, DefaultRequestTimeout, context.DeadlineExceeded)
	case msg := <-reply.ch:
		resp, err := decodeReply[Resp](pid, req, msg)
		return resp, withCallerContext(ctx, err)
	}
}

// RequestAsync is Request for code inside an actor that must not block its
// mailbox: it sends req to pid and returns at once. When the reply arrives
// (or the wait ends), then runs on the actor's own goroutine, between its
// other messages, like any message the actor receives — so it may use and
// change the actor's state freely. The reply is decoded as by Request: a
// response whose status is not OK becomes the matching sentinel error, a
// dead or unknown PID is ErrUnavailable, and no reply within timeout
// (DefaultRequestTimeout when timeout <= 0) is context.DeadlineExceeded.
//
//	actors.RequestAsync(ctx, cachePID, &cachev1.GetRequest{Name: "sessions", Key: "u42"}, time.Second,
//		func(resp *cachev1.GetResponse, err error) {
//			if err != nil { … }
//			a.user = resp.GetValue() // on the actor's goroutine
//		})
//
// A message the actor receives in the meantime is handled before then
// runs; if the actor restarts before the reply, then still runs, on the new
// incarnation (guard with a generation counter where that matters).
// Without RequestAsync, ctx.Request(pid, req) delivers the bare response to
// Receive, where its status must be checked by hand
// (resp.GetStatus().Err()).
func RequestAsync[Resp proto.Message](ctx actor.Context, pid *actor.PID, req proto.Message, timeout time.Duration, then func(Resp, error)) {
	var zero Resp
	if pid == nil {
		then(zero, backends.Unavailable(describe(req), errors.New("no actor to ask")))
		return
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	f := ctx.RequestFuture(pid, req, timeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		switch {
		case errors.Is(err, actor.ErrTimeout):
			then(zero, fmt.Errorf("%s: no reply from %s within %s: %w", describe(req), pid.Id, timeout, context.DeadlineExceeded))
		case errors.Is(err, actor.ErrDeadLetter):
			then(zero, backends.Unavailable(describe(req), fmt.Errorf("no actor at %s", pid.Id)))
		case err != nil:
			then(zero, backends.Unavailable(describe(req), err))
		default:
			then(decodeReply[Resp](pid, req, res))
		}
	})
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
	switch m := msg.(type) {
	case *actor.DeadLetterResponse:
		return zero, backends.Unavailable(describe(req), fmt.Errorf("no actor at %s", pid.Id))
	case *actor.Terminated:
		return zero, backends.Unavailable(describe(req), fmt.Errorf("actor %s stopped", pid.Id))
	case Resp:
		if st, ok := protoconv.StatusOf(m); ok {
			return m, st.Err()
		}
		return m, nil
	}
	// Another type carrying a failure status: the actor rejected an unknown
	// or malformed request.
	if st, ok := protoconv.StatusOf(msg); ok {
		if err := st.Err(); err != nil {
			return zero, err
		}
	}
	return zero, fmt.Errorf("%s: %w", describe(req), backends.Invalid("reply", protoconv.MessageName(msg), "not the reply this request expects"))
}

// describe names the operation a request message asks for, for error
// texts: the component (from the proto package), the name of the
// namespace it addresses and the verb with its item, e.g.
// `cache "sessions": get "k"`, `config "default": list "app/"`,
// `discovery: deregister "api-1"`. A value that is not a Baton request is
// described by its proto name, or as "request".
func describe(req any) string {
	pm, ok := req.(proto.Message)
	if !ok || pm == nil {
		return "request"
	}
	m := pm.ProtoReflect()
	d := m.Descriptor()
	verb, isReq := strings.CutSuffix(string(d.Name()), "Request")
	if !isReq {
		return string(d.FullName())
	}
	component := string(d.ParentFile().Package())
	if parts := strings.Split(component, "."); len(parts) >= 2 {
		component = parts[1] // baton.<component>.v1
	}
	out := component
	if name := stringField(m, "name"); name != "" {
		out += fmt.Sprintf(" %q", name)
	}
	out += ": " + words(verb)
	for _, f := range []protoreflect.Name{"key", "prefix", "service_id", "service_name", "election", "backend"} {
		if v := stringField(m, f); v != "" {
			out += fmt.Sprintf(" %q", v)
			break
		}
	}
	return out
}

// stringField returns the value of m's string field called name, or "".
func stringField(m protoreflect.Message, name protoreflect.Name) string {
	fd := m.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
		return ""
	}
	return m.Get(fd).String()
}

// words turns a CamelCase verb into lower-case words: "TryAcquire" → "try
// acquire".
func words(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
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
