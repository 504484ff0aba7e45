package components

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
)

// incarnation is one life of a component actor that runs backend calls in
// goroutines (the lock and election actors): from Started, or a reset,
// until Stopping, Restarting or the next reset. It owns those goroutines,
// the context that ends them and the generation number that their
// continuation messages carry, so a message sent by an earlier life is
// recognised and dropped.
type incarnation struct {
	gen       uint64
	self      *actor.PID
	root      *actor.RootContext
	life      context.Context // ends when this incarnation ends
	kill      context.CancelFunc
	wg        sync.WaitGroup // every goroutine this incarnation started
	opTimeout time.Duration
}

// generations numbers every incarnation of every actor, so a restarted
// actor (a fresh instance) never mistakes an older incarnation's
// continuation for its own.
var generations atomic.Uint64

// continuation is a message an actor's own goroutines and timers send back
// to it. It belongs to the incarnation that started them.
type continuation interface {
	generation() uint64
}

// stamp marks a continuation with the incarnation that sends it; embed it.
type stamp struct{ gen uint64 }

func (s stamp) generation() uint64 { return s.gen }

// begin starts the first incarnation; call it on Started.
func (i *incarnation) begin(ctx actor.Context) {
	i.self, i.root = ctx.Self(), ctx.ActorSystem().Root
	i.renew()
}

// renew starts a fresh incarnation in place (same PID), after end.
func (i *incarnation) renew() {
	i.gen = generations.Add(1)
	i.life, i.kill = context.WithCancel(context.Background())
}

// started reports whether begin was called.
func (i *incarnation) started() bool { return i.kill != nil }

// end cancels every goroutine of this incarnation and waits for them.
// Continuations still on their way are stale from then on.
func (i *incarnation) end() {
	i.kill()
	i.wg.Wait()
	i.gen = generations.Add(1)
}

// stale reports whether msg is a continuation of an earlier incarnation.
func (i *incarnation) stale(msg any) bool {
	c, ok := msg.(continuation)
	return ok && c.generation() != i.gen
}

// stamp is the mark of this incarnation's continuations.
func (i *incarnation) stamp() stamp { return stamp{i.gen} }

// opContext bounds one backend call made from the mailbox.
func (i *incarnation) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(i.life, i.opTimeout)
}

// spawn runs f in a goroutine of this incarnation.
func (i *incarnation) spawn(f func()) {
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		f()
	}()
}

// giveUpLater retries give (a Release or a Resign) with backoff until it
// succeeds, answers ErrNotHeld, or done closes (the lease or leadership is
// over anyway). A lease or leadership whose give-up failed is otherwise
// kept alive by its auto-renewal for good when its holder does not try
// again — and a holder that was answered an error often does not. When
// the incarnation ends first it tries once more, bounded by opTimeout.
func (i *incarnation) giveUpLater(done <-chan struct{}, give func(context.Context) error) {
	life, timeout := i.life, i.opTimeout
	i.spawn(func() {
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			t := time.NewTimer(backoff)
			ctx := life
			select {
			case <-done:
				t.Stop()
				return
			case <-life.Done():
				t.Stop()
				ctx = context.Background()
			case <-t.C:
			}
			octx, cancel := context.WithTimeout(ctx, timeout)
			err := give(octx)
			cancel()
			if err == nil || errors.Is(err, backends.ErrNotHeld) || life.Err() != nil {
				return
			}
		}
	})
}

// notifyWhenDone sends msg to the actor when done closes, unless the
// incarnation ends first.
func (i *incarnation) notifyWhenDone(done <-chan struct{}, msg continuation) {
	life, root, self := i.life, i.root, i.self
	i.spawn(func() {
		select {
		case <-done:
			root.Send(self, msg)
		case <-life.Done():
		}
	})
}

// sendAfter sends msg to the actor after d.
func (i *incarnation) sendAfter(d time.Duration, msg continuation) *time.Timer {
	root, self := i.root, i.self
	return time.AfterFunc(d, func() { root.Send(self, msg) })
}

// sender returns a function that sends a continuation to the actor, for
// use from the incarnation's goroutines.
func (i *incarnation) sender() func(msg continuation) {
	root, self := i.root, i.self
	return func(msg continuation) { root.Send(self, msg) }
}
