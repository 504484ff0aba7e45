package components

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// topicSet is the subscription bookkeeping of an actor that serves watches
// (the config and discovery actors): topics that share one backend watch
// each, the subscriptions on them, the watch requests still waiting for
// their backend watch to start, and the goroutines running those watches.
// T is what the actor keeps per topic besides that. It is used only from
// the owning actor's Receive, so it needs no locks.
type topicSet[T any] struct {
	kind    string                          // "config", "discovery": starts error texts
	answer  func(*statusv1.Status) any      // builds the response to a watch request
	resync  func(id string, seq uint64) any // what a subscriber gets once it caught up
	setup   time.Duration                   // bound on setting up one backend watch
	onCount func(n int)                     // told the number of backend watches; may be nil

	// Kept across incarnations: a message from a goroutine of an earlier
	// incarnation carries an older gen and is ignored.
	gen, nextID uint64
	wg          sync.WaitGroup
	lastCount   int

	// Per incarnation (start). base is the incarnation's context: the
	// backend watches derive from it, and so may the actor's own calls.
	hub     *Hub
	base    context.Context
	cancel  context.CancelFunc
	byKey   map[string]*topic[T]    // hub topic → topic with subscribers
	byWatch map[uint64]*topic[T]    // running backend watch goroutines
	subs    map[string]*topicSub[T] // subscription id → subscription
}

// topic is one watched thing (key, prefix, service) and its backend watch.
type topic[T any] struct {
	key     string // hub topic, and index in topicSet.byKey
	label   string // the watched key, prefix or service, as error texts name it
	id      uint64 // backend watch id
	cancel  context.CancelFunc
	started bool
	pending []pendingWatch // watch requests answered once the watch started
	state   T
}

type pendingWatch struct {
	sender *actor.PID
	subID  string
}

type topicSub[T any] struct {
	topic *topic[T]
	pid   *actor.PID
}

// start sets up one incarnation.
func (s *topicSet[T]) start(window uint64) {
	s.hub = NewHub()
	s.hub.Window = window
	s.byKey = map[string]*topic[T]{}
	s.byWatch = map[uint64]*topic[T]{}
	s.subs = map[string]*topicSub[T]{}
	s.base, s.cancel = context.WithCancel(context.Background())
}

// teardown ends every subscription with cause and waits for every watch
// goroutine.
func (s *topicSet[T]) teardown(ctx actor.Context, cause error) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	s.gen++ // what the goroutines sent before they ended is stale now
	for _, t := range s.byKey {
		s.failPending(ctx, t, cause)
	}
	st := statusv1.FromError(cause)
	for id, sub := range s.subs {
		ctx.Send(sub.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
		s.hub.Remove(ctx, id)
	}
	s.byKey = map[string]*topic[T]{}
	s.subs = map[string]*topicSub[T]{}
	s.byWatch = map[uint64]*topic[T]{}
	s.notifyCount()
}

func (s *topicSet[T]) notifyCount() {
	n := len(s.byWatch)
	if n == s.lastCount {
		return
	}
	s.lastCount = n
	if s.onCount != nil {
		s.onCount(n)
	}
}

// handle serves the messages every watching actor treats alike, and reports
// whether msg was one of them.
func (s *topicSet[T]) handle(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *subscriptionv1.UnsubscribeRequest:
		s.removeSub(ctx, m.GetSubscriptionId(), errUnsubscribed)
		respond(ctx, &subscriptionv1.UnsubscribeResponse{Status: statusv1.OK()})
	case *subscriptionv1.Ack:
		s.hub.Ack(ctx, m.GetSubscriptionId(), m.GetSeq(), s.resync)
	case *actor.Terminated:
		s.subscriberStopped(ctx, m.Who)
	case *topicWatchStarted:
		s.watchStarted(ctx, m)
	case *topicWatchEnded:
		s.watchEnded(ctx, m)
	case *WatchStatsRequest:
		respond(ctx, &WatchStats{BackendWatches: len(s.byWatch), Topics: len(s.byKey), Subscriptions: len(s.subs)})
	default:
		return false
	}
	return true
}

// live returns the topic a goroutine message is about, or nil when the
// message is stale (an earlier incarnation, or a topic given up since).
func (s *topicSet[T]) live(gen, id uint64) *topic[T] {
	t := s.byWatch[id]
	if gen != s.gen || t == nil || s.byKey[t.key] != t {
		return nil
	}
	return t
}

// watchSubscriber checks the subscription id of a watch request and returns
// who receives its events: the subscriber it names, or its sender.
func watchSubscriber(ctx actor.Context, subID string, s *subscriptionv1.Subscriber) (*actor.PID, error) {
	if subID == "" {
		return nil, backends.Invalid("subscription_id", "", "must not be empty")
	}
	pid := subscriberPID(ctx, s)
	if pid == nil {
		return nil, backends.Invalid("subscriber", "", "a watch needs a subscriber or a sender")
	}
	return pid, nil
}

// subscribeTopic adds subscription subID for pid to the topic under key —
// replacing an earlier subscription with that id — and answers the watch
// request once the topic's backend watch runs. The first subscriber of a
// topic creates it with state and starts its backend watch with open;
// label names the watched thing in error texts. It reports whether the
// request was answered already (the watch was running).
func subscribeTopic[T, E any](ctx actor.Context, s *topicSet[T], subID string, pid *actor.PID,
	key, label string, state T, open func(context.Context) (<-chan E, error)) (*topic[T], bool) {
	s.removeSub(ctx, subID, errUnsubscribed)
	t := s.byKey[key]
	if t == nil {
		t = &topic[T]{key: key, label: label, state: state}
		s.byKey[key] = t
		s.nextID++
		t.id = s.nextID
		s.byWatch[t.id] = t
		s.notifyCount()
		t.cancel = startTopicWatch(ctx, &s.wg, s.base, s.gen, t.id, s.setup, s.kind+": watch set-up", open)
	}
	s.hub.Add(ctx, key, subID, pid)
	s.subs[subID] = &topicSub[T]{topic: t, pid: pid}
	if !t.started {
		t.pending = append(t.pending, pendingWatch{sender: ctx.Sender(), subID: subID})
		return t, false
	}
	respond(ctx, s.answer(statusv1.OK()))
	return t, true
}

func (s *topicSet[T]) watchStarted(ctx actor.Context, m *topicWatchStarted) {
	t := s.live(m.gen, m.id)
	if t == nil {
		return
	}
	if m.err != nil {
		// Nobody was served yet: every subscriber of the topic is pending.
		s.failPending(ctx, t, fmt.Errorf("%s: watch %q: %w", s.kind, t.label, actorOpError(m.err)))
		t.cancel()
		return
	}
	t.started = true
	for _, p := range t.pending {
		if p.sender != nil {
			ctx.Send(p.sender, s.answer(statusv1.OK()))
		}
	}
	t.pending = nil
}

// failPending answers the pending watch requests of t with err and drops
// their subscriptions (and t with the last one).
func (s *topicSet[T]) failPending(ctx actor.Context, t *topic[T], err error) {
	st := statusv1.FromError(err)
	pending := t.pending
	t.pending = nil
	for _, p := range pending {
		if sub := s.subs[p.subID]; sub != nil && sub.topic == t {
			s.removeSub(ctx, p.subID, errUnsubscribed)
		}
		if p.sender != nil {
			ctx.Send(p.sender, s.answer(st))
		}
	}
}

func (s *topicSet[T]) watchEnded(ctx actor.Context, m *topicWatchEnded) {
	t := s.byWatch[m.id]
	if m.gen != s.gen || t == nil {
		return
	}
	delete(s.byWatch, m.id)
	s.notifyCount()
	if s.byKey[t.key] != t {
		return // stopped on purpose
	}
	// The backend ended the watch by itself (it was closed).
	cause := fmt.Errorf("%s: watch %q ended: %w", s.kind, t.label, backends.ErrClosed)
	s.failPending(ctx, t, cause)
	st := statusv1.FromError(cause)
	for id, sub := range s.subs {
		if sub.topic == t {
			ctx.Send(sub.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
			s.removeSub(ctx, id, errUnsubscribed)
		}
	}
	if s.byKey[t.key] == t {
		delete(s.byKey, t.key)
	}
}

// Why a watch request still waiting for its backend watch is answered
// when its subscription is dropped: on request (an unsubscribe, or a new
// watch request with the same subscription id), or because the subscriber
// stopped first. The latter is not the requester's cancellation, and an
// actor that answered context.Canceled to a caller whose context is live
// would make it look like one.
var (
	errUnsubscribed      = fmt.Errorf("unsubscribed before the watch started: %w", context.Canceled)
	errSubscriberStopped = fmt.Errorf("the subscriber stopped before the watch started: %w", backends.ErrClosed)
)

// removeSub drops subscription id; the topic's backend watch stops with its
// last subscriber. A watch request of id still pending is answered with why.
func (s *topicSet[T]) removeSub(ctx actor.Context, id string, why error) {
	sub, ok := s.subs[id]
	if !ok {
		return
	}
	delete(s.subs, id)
	_, last := s.hub.Remove(ctx, id)
	t := sub.topic
	for i, p := range t.pending {
		if p.subID == id {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			if p.sender != nil {
				ctx.Send(p.sender, s.answer(statusv1.FromError(fmt.Errorf("%s: watch %q: %w", s.kind, t.label, why))))
			}
			break
		}
	}
	if last && s.byKey[t.key] == t {
		delete(s.byKey, t.key)
		t.cancel()
	}
}

// subscriberStopped drops every subscription of a stopped subscriber.
func (s *topicSet[T]) subscriberStopped(ctx actor.Context, pid *actor.PID) {
	for id, sub := range s.subs {
		if sub.pid.Equal(pid) {
			s.removeSub(ctx, id, errSubscriberStopped)
		}
	}
	s.hub.RemovePID(ctx, pid) // nothing left normally; keeps the hub exact
}

// Messages from a topic watch goroutine to its actor, tagged with the
// actor's generation and the watch id so that stale ones are ignored.
type (
	topicWatchStarted struct {
		gen, id uint64
		err     error
	}
	topicWatchEvent[E any] struct {
		gen, id uint64
		ev      E
	}
	topicWatchEnded struct{ gen, id uint64 }
)

// startTopicWatch opens a backend watch in a goroutine (tracked by wg) and
// reports to the actor: topicWatchStarted once open returned, one
// topicWatchEvent per event, and topicWatchEnded when the goroutine ends.
// The returned cancel ends the watch. Because a backend watch's ctx is also
// its lifetime, the set-up is bounded by a timer of setup, not a deadline.
func startTopicWatch[E any](ctx actor.Context, wg *sync.WaitGroup, base context.Context, gen, id uint64,
	setup time.Duration, op string, open func(context.Context) (<-chan E, error)) context.CancelFunc {
	wctx, cancel := context.WithCancel(base)
	self, root := ctx.Self(), ctx.ActorSystem().Root
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		var timedOut atomic.Bool
		timer := time.AfterFunc(setup, func() { timedOut.Store(true); cancel() })
		ch, err := open(wctx)
		timer.Stop()
		forward := err == nil
		if timedOut.Load() {
			err, forward = backends.Unavailable(op, errors.New("timed out")), false
		}
		root.Send(self, &topicWatchStarted{gen: gen, id: id, err: err})
		if ch != nil {
			for ev := range ch { // closes once wctx ends
				if forward {
					root.Send(self, &topicWatchEvent[E]{gen: gen, id: id, ev: ev})
				}
			}
		}
		root.Send(self, &topicWatchEnded{gen: gen, id: id})
	}()
	return cancel
}
