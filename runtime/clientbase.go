package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"google.golang.org/protobuf/proto"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
)

// withClientDefaults fills in the defaults of the lock and election
// facades' options.
func withClientDefaults(o nodeaccess.ClientOptions) nodeaccess.ClientOptions {
	if o.CleanupTimeout <= 0 {
		o.CleanupTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// grant is what a client holds in an actor: a lease in the lock actor or a
// leadership in the election actor, known by the id the actor gave it.
type grant interface {
	grantID() string
	end()
}

// grantDone is the Done channel of a grant, closed once when it ends.
type grantDone struct {
	done    chan struct{}
	endOnce sync.Once
}

func (g *grantDone) Done() <-chan struct{} { return g.done }

func (g *grantDone) end() { g.endOnce.Do(func() { close(g.done) }) }

// clientBase is what LockClient and ElectionClient share: the actor they
// talk to, the inbox that receives their events (loss reports among
// them) and the grants they hold. mu also guards what the owning client
// keeps beside it.
type clientBase[G grant] struct {
	root    *actor.RootContext
	pid     *actor.PID
	inbox   *inbox
	err     error // set when the inbox could not be registered
	cleanup time.Duration
	log     *slog.Logger
	// cancel sends the CancelRequest of the actor's message package for a
	// request id and waits for its answer.
	cancel func(ctx context.Context, requestID string) error

	mu     sync.Mutex
	closed bool
	held   map[string]G // grant id → grant
	lost   lostSet
	// withdrawals counts the CancelRequests still running in the
	// background for waits that ended; Close waits for them. Add is only
	// called under mu while not closed, so it never races with that Wait.
	withdrawals sync.WaitGroup
}

func (b *clientBase[G]) init(root *actor.RootContext, pid *actor.PID, kind string, cleanup time.Duration,
	log *slog.Logger, onEvent func(msg any), cancel func(ctx context.Context, requestID string) error) {
	b.root, b.pid, b.cleanup, b.log, b.cancel = root, pid, cleanup, log, cancel
	b.held = map[string]G{}
	b.inbox, b.err = newInbox(root.ActorSystem(), kind, onEvent)
}

// withdraw cleans up after an acquire or campaign that returned no grant,
// and returns the caller's error. When no answer was received (ctx ended,
// or the reply was lost), the actor may still be waiting on the request —
// or have granted it meanwhile: a CancelRequest withdraws or gives up
// either. It is sent in the background, bounded by CleanupTimeout, so the
// caller returns at its deadline even when the actor is busy (its mailbox
// runs Release and Resign calls one at a time, each up to its OpTimeout,
// and a backend call in flight ends only when the backend answers). Close
// waits for these withdrawals, so none outlives the client.
//
// When the caller's ctx has ended, the error wraps ctx.Err() — and gaveUp
// too when it is set (backends.ErrNotObtained for a lock: the caller did
// not get it).
func (b *clientBase[G]) withdraw(ctx context.Context, op, name, requestID string, noAnswer bool, err, gaveUp error) error {
	if noAnswer {
		b.withdrawLater(ctx, requestID)
	}
	cerr := ctx.Err()
	switch {
	case cerr != nil && gaveUp != nil:
		return fmt.Errorf("%s %q: %w: %w", op, name, gaveUp, cerr)
	case cerr != nil:
		return fmt.Errorf("%s %q: %w", op, name, cerr)
	case gaveUp != nil && !errors.Is(err, gaveUp) &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		// The actor gave up at the deadline it was given.
		return fmt.Errorf("%s %q: %w: %w", op, name, gaveUp, err)
	case !noAnswer:
		// The actor's answer already names the backend, the operation
		// and the name: one prefix is enough.
		return err
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}

// withdrawLater sends the CancelRequest of requestID from a goroutine that
// Close waits for; after Close it is sent at once instead.
func (b *clientBase[G]) withdrawLater(ctx context.Context, requestID string) {
	send := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cleanup)
		defer cancel()
		if err := b.cancel(cctx, requestID); err != nil && !errors.Is(err, backends.ErrClosed) {
			b.log.Warn("baton: withdrawing an abandoned request failed", "request_id", requestID, "err", err)
		}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		send()
		return
	}
	b.withdrawals.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.withdrawals.Done()
		send()
	}()
}

func (b *clientBase[G]) usable() error {
	if b.err != nil {
		return b.err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("client: %w", backends.ErrClosed)
	}
	return nil
}

// keep records a grant just answered. A loss reported before the answer
// was read ends it at once. False when the client is closed: the caller
// then gives the grant back itself.
func (b *clientBase[G]) keep(g G) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	if b.lost.take(g.grantID()) {
		g.end() // lost before the answer was read
	} else {
		b.held[g.grantID()] = g
	}
	return true
}

// lose handles the actor's report that grant id is lost; it must not
// block (it runs on the sending actor's goroutine).
func (b *clientBase[G]) lose(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g, ok := b.held[id]; ok {
		delete(b.held, id)
		g.end()
		return
	}
	b.lost.add(id)
}

// forget ends a grant that is no longer held.
func (b *clientBase[G]) forget(g G) {
	b.mu.Lock()
	delete(b.held, g.grantID())
	b.mu.Unlock()
	g.end()
}

// giveUp sends req, which gives g back to the actor (a release or a
// resignation), and forgets g once it is gone: given back, or lost already
// (ErrNotHeld). op starts the error texts.
func giveUp[Resp proto.Message, G grant](ctx context.Context, b *clientBase[G], g G, req proto.Message, op string) error {
	if err := b.usable(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := actors.Request[Resp](ctx, b.root, b.pid, req)
	if err == nil || errors.Is(err, backends.ErrNotHeld) {
		b.forget(g)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// shut marks the client closed and returns the grants it still held; false
// when it was closed already.
func (b *clientBase[G]) shut() (map[string]G, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	b.closed = true
	held := b.held
	b.held = map[string]G{}
	return held, true
}

// closeInbox waits for the withdrawals still running (shut has been
// called: no new one starts) and removes the inbox, if it was registered.
func (b *clientBase[G]) closeInbox() {
	b.withdrawals.Wait()
	if b.inbox != nil {
		b.inbox.close()
	}
}
