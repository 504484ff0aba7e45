package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// subHandler is what a facade plugs into a subscription: how to subscribe,
// how to turn the actor's messages into values on its Go channel, and how
// to close that channel.
type subHandler interface {
	// subscribe opens subscription id on the serving actor, with events
	// going to sub, and waits for the answer. resume is true when the
	// serving actor ended the previous subscription (it restarted) and the
	// watch continues under a new id.
	subscribe(ctx context.Context, id string, sub *subscriptionv1.Subscriber, resume bool) error
	// handle processes one event, Resync or other message of the current
	// subscription, in order. It returns false when the watch must end
	// (ctx ended while it was blocked on the channel).
	handle(ctx context.Context, msg any) bool
	// close closes the Go channel; called once, after the last handle.
	close()
}

// subscription is the facade end of one actor subscription: a tiny actor
// (spawned with SpawnNamed) that receives the serving actor's events in
// order, hands each to the handler — which may block on the facade's Go
// channel, so a slow reader holds back only its own acknowledgements — and
// acknowledges it afterwards, which is the serving actor's flow control.
// When the watch's context ends the actor stops, sends UnsubscribeRequest
// and closes the channel. A subscriber that stops without unsubscribing is
// dropped by the serving actor's death watch anyway.
type subscription struct {
	target  *actor.PID
	h       subHandler
	ctx     context.Context
	release func()
	id      string // owned by the actor once spawned
}

// subscribeMsg is what the serving actor sends: events, Resync and Ended.
type subscribeMsg interface {
	GetSubscriptionId() string
	GetSeq() uint64
}

// openSubscription spawns the subscriber actor, subscribes it through h
// and ties its life to ctx and closing (the facade's own lifetime). On
// error nothing is left running and the handler's channel is closed.
func openSubscription(ctx, closing context.Context, root *actor.RootContext, target *actor.PID, kind string, h subHandler) error {
	if err := ctx.Err(); err != nil {
		h.close()
		return fmt.Errorf("%s: watch: %w", kind, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	stopClosing := context.AfterFunc(closing, cancel)
	s := &subscription{target: target, h: h, ctx: wctx, id: newSubscriptionID(),
		release: func() { stopClosing(); cancel() }}
	pid, err := root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return s }), "baton-"+kind+"-watch-"+s.id)
	if err != nil {
		s.release()
		h.close()
		return backends.Unavailable(kind+": watch", err)
	}
	if err := h.subscribe(wctx, s.id, actors.SubscriberOf(pid), false); err != nil {
		cancel()
		root.Stop(pid) // closes the channel once stopped
		return err
	}
	context.AfterFunc(wctx, func() { root.Stop(pid) })
	return nil
}

// Receive implements actor.Actor.
func (s *subscription) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Stopping:
		c.Send(s.target, &subscriptionv1.UnsubscribeRequest{SubscriptionId: s.id})
	case *actor.Stopped:
		s.release()
		s.h.close()
	case *subscriptionv1.Ended:
		if m.GetSubscriptionId() != s.id {
			return
		}
		if !s.resume(c, m.GetStatus()) {
			c.Stop(c.Self())
		}
	case subscribeMsg:
		if m.GetSubscriptionId() != s.id || s.ctx.Err() != nil {
			return
		}
		ok := s.h.handle(s.ctx, m)
		c.Send(s.target, &subscriptionv1.Ack{SubscriptionId: s.id, Seq: m.GetSeq()})
		if !ok {
			c.Stop(c.Self())
		}
	}
}

// resume subscribes again under a new id after the serving actor ended the
// subscription for a passing reason (it restarted); a closed component ends
// the watch.
func (s *subscription) resume(c actor.Context, st *statusv1.Status) bool {
	if st.GetCode() != statusv1.Code_CODE_UNAVAILABLE || s.ctx.Err() != nil {
		return false
	}
	s.id = newSubscriptionID()
	return s.h.subscribe(s.ctx, s.id, actors.SubscriberOf(c.Self()), true) == nil
}

func newSubscriptionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
