package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// ConfigActorConfig configures the config center actor.
type ConfigActorConfig struct {
	// Center is the default config namespace: requests whose name is empty
	// or equals Name go to it. The caller owns it (the actor never closes
	// it). Required unless Open serves the default name too.
	Center backends.ConfigCenter
	// Name is the name of Center (its backends.ConfigOptions.Name).
	// Default: "default".
	Name string
	// Open, if set, opens another config namespace by name. The actor opens
	// each name at most once, keeps it, and closes it (when it implements
	// backends.Closer) when the actor stops. Nil: only Center is served and
	// other names are rejected with an invalid-argument status.
	Open func(name string) (backends.ConfigCenter, error)
	// Backend is "redis" or "etcd", for the connector gate.
	Backend string
	// Supervisor is the connector supervisor; nil disables the gate.
	Supervisor *actor.PID
	// OpTimeout bounds one backend call made from the mailbox, and the
	// set-up of one backend watch. Default: 5s.
	OpTimeout time.Duration
	// Window is how many events a subscriber may leave unacknowledged
	// before it is skipped (and later told to resync). Default:
	// DefaultSubscriberWindow.
	Window uint64
	// OnWatchCount, if set, is called from the actor with the number of
	// backend watches it runs, every time that number changes. It must not
	// block.
	OnWatchCount func(n int)
	// Logger. Default: discard.
	Logger *slog.Logger
}

// WatchStatsRequest asks a config or discovery actor how many backend
// watches it runs and how many subscriptions they serve. It is a local
// (non-protobuf) message, answered with *WatchStats; use it from tests and
// diagnostics on the same node.
type WatchStatsRequest struct{}

// WatchStats answers WatchStatsRequest.
type WatchStats struct {
	// BackendWatches counts the backend watches whose goroutine is running
	// (starting, live, or winding down after cancellation).
	BackendWatches int
	// Topics counts the watched keys, prefixes or services that have
	// subscribers.
	Topics int
	// Subscriptions counts the subscriptions over all topics.
	Subscriptions int
}

// ConfigActor serves configv1 requests for one or more config namespaces.
// Each request is one backend call made from the mailbox, bounded by
// OpTimeout; running out of that time is reported as unavailable, never as
// the caller's deadline. A SetRequest with expected_version is a
// compare-and-set and answers the new item; without it the write is
// unconditional and the answered item has version 0, because
// backends.ConfigCenter.Set reports none. ResolveRequest uses
// backends.Resolve.
//
// # Watches
//
// A WatchRequest with from_version 0 ("only future changes") joins the
// shared topic of its (namespace, key, prefix flag): the first such
// subscriber starts exactly one backend watch (ConfigCenter.WatchWith) and
// every later one is served from it; the watch stops when the last
// subscriber leaves (UnsubscribeRequest, or the subscriber actor stopped —
// subscribers are death-watched). The response to the request is sent once
// the backend watch is established, so every change made after the
// response arrives is delivered. A subscriber joining a running topic may
// also receive a change that was already in flight when it joined.
//
// A WatchRequest with from_version > 0 asks for a replay from its own
// position, which no other subscriber shares, so it gets a dedicated backend
// watch (WatchWith with FromVersion and Known) that lives as long as the
// subscription. Bindings and reconnecting facades use this; plain watches
// share.
//
// The backend watch runs in a goroutine that forwards each event to the
// actor as a message; the actor fans it out through a Hub: each subscriber
// gets configv1.Event{subscription_id, seq, type, item} in order and
// acknowledges with subscriptionv1.Ack. A subscriber more than Window events
// behind is skipped, so it cannot delay the others; once it has caught up
// it gets subscriptionv1.Resync and must re-read (List) the watched range.
// A ConfigResync from the backend (lost history) is forwarded as an
// EVENT_TYPE_RESYNC event followed by the difference.
//
// When a backend watch ends by itself (its config center closed) or the
// actor stops or restarts, every affected subscriber gets
// subscriptionv1.Ended (seq 0: it is outside the acknowledged sequence) with
// CODE_CLOSED when the actor or center is gone for good, CODE_UNAVAILABLE
// otherwise.
//
// The props hold the actor's state across supervisor restarts (opened
// namespaces survive; subscriptions are ended): spawn them once.
type ConfigActor struct {
	cfg     ConfigActorConfig
	log     *slog.Logger
	opened  map[string]backends.ConfigCenter // by Open, closed on stop
	openErr map[string]error

	// Per incarnation.
	gate      *BackendGate
	hub       *Hub
	topics    map[string]*configTopic  // topic key → topic with subscribers
	watches   map[uint64]*configTopic  // running backend watch goroutines
	subs      map[string]*configSubRef // subscription id → subscription
	nextID    uint64
	gen       uint64
	base      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	lastCount int
}

type configTopic struct {
	key     string // hub topic
	id      uint64 // backend watch id
	center  backends.ConfigCenter
	name    string
	watch   string // the watched key or prefix
	opts    backends.WatchOptions
	cancel  context.CancelFunc
	started bool
	pending []configPending // watch requests answered once started
}

type configPending struct {
	sender *actor.PID
	subID  string
}

type configSubRef struct {
	topic *configTopic
	pid   *actor.PID
}

// NewConfigActorProps returns the props of a config actor.
func NewConfigActorProps(cfg ConfigActorConfig) *actor.Props {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = DiscardLogger()
	}
	a := &ConfigActor{cfg: cfg, log: cfg.Logger, opened: map[string]backends.ConfigCenter{}, openErr: map[string]error{}}
	return actor.PropsFromProducer(func() actor.Actor { return a })
}

// Receive implements actor.Actor.
func (a *ConfigActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	if a.gate != nil && a.gate.Handle(ctx, msg) {
		return
	}
	switch m := msg.(type) {
	case *actor.Started:
		a.start(ctx)
	case *actor.Restarting:
		a.teardown(ctx, backends.Unavailable("config actor", errors.New("restarted")))
	case *actor.Stopping:
		a.teardown(ctx, fmt.Errorf("config actor stopped: %w", backends.ErrClosed))
		for name, c := range a.opened {
			if cl, ok := c.(backends.Closer); ok {
				if err := cl.Close(); err != nil {
					a.log.Debug("baton: close config namespace", "name", name, "err", err)
				}
			}
			delete(a.opened, name)
		}

	case *configv1.GetRequest:
		var it backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			it, err = cc.GetItem(c, m.GetKey())
			return err
		})
		respond(ctx, &configv1.GetResponse{Status: statusv1.FromError(err), Item: itemOrNil(it, err)})
	case *configv1.SetRequest:
		var it backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			if m.ExpectedVersion != nil {
				it, err = cc.CompareAndSet(c, m.GetKey(), m.GetValue(), m.GetExpectedVersion())
				return err
			}
			// An unconditional Set reports no version: the item carries
			// the key and value written, version 0.
			it = backends.ConfigItem{Key: m.GetKey(), Value: m.GetValue()}
			return cc.Set(c, m.GetKey(), m.GetValue())
		})
		respond(ctx, &configv1.SetResponse{Status: statusv1.FromError(err), Item: itemOrNil(it, err)})
	case *configv1.DeleteRequest:
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) error {
			return cc.Delete(c, m.GetKey())
		})
		respond(ctx, &configv1.DeleteResponse{Status: statusv1.FromError(err)})
	case *configv1.ListRequest:
		var items []backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			items, err = cc.ListItems(c, m.GetPrefix())
			return err
		})
		respond(ctx, &configv1.ListResponse{Status: statusv1.FromError(err), Items: itemsProto(items)})
	case *configv1.HistoryRequest:
		var items []backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			items, err = cc.History(c, m.GetKey(), int(min(m.GetLimit(), math.MaxInt32)))
			return err
		})
		respond(ctx, &configv1.HistoryResponse{Status: statusv1.FromError(err), Items: itemsProto(items)})
	case *configv1.RollbackRequest:
		var it backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			it, err = cc.Rollback(c, m.GetKey(), m.GetVersion())
			return err
		})
		respond(ctx, &configv1.RollbackResponse{Status: statusv1.FromError(err), Item: itemOrNil(it, err)})
	case *configv1.ResolveRequest:
		var (
			it    backends.ConfigItem
			layer string
		)
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			it, layer, err = backends.Resolve(c, cc, m.GetComponent(), m.GetInstance(), m.GetKey())
			return err
		})
		respond(ctx, &configv1.ResolveResponse{Status: statusv1.FromError(err), Item: itemOrNil(it, err), Layer: LayerToProto(layer)})

	case *configv1.WatchRequest:
		a.watch(ctx, m)
	case *subscriptionv1.UnsubscribeRequest:
		a.removeSub(ctx, m.GetSubscriptionId())
		respond(ctx, &subscriptionv1.UnsubscribeResponse{Status: statusv1.OK()})
	case *subscriptionv1.Ack:
		a.hub.Ack(ctx, m.GetSubscriptionId(), m.GetSeq(), resyncFor)
	case *actor.Terminated:
		a.subscriberStopped(ctx, m.Who)
	case *topicWatchStarted:
		a.watchStarted(ctx, m)
	case *topicWatchEvent[backends.ConfigEvent]:
		a.watchEvent(ctx, m)
	case *topicWatchEnded:
		a.watchEnded(ctx, m)
	case *WatchStatsRequest:
		respond(ctx, &WatchStats{BackendWatches: len(a.watches), Topics: len(a.topics), Subscriptions: len(a.subs)})
	default:
		rejectUnknown(ctx, m)
	}
}

// start sets up one incarnation of the actor.
func (a *ConfigActor) start(ctx actor.Context) {
	a.gate = NewBackendGate(a.cfg.Backend)
	a.gate.Subscribe(ctx, a.cfg.Supervisor)
	a.hub = NewHub()
	a.hub.Window = a.cfg.Window
	a.topics = map[string]*configTopic{}
	a.watches = map[uint64]*configTopic{}
	a.subs = map[string]*configSubRef{}
	a.base, a.cancel = context.WithCancel(context.Background())
}

// teardown ends every subscription and waits for every watch goroutine.
func (a *ConfigActor) teardown(ctx actor.Context, cause error) {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	a.gen++ // what the goroutines sent before they ended is stale now
	for _, t := range a.topics {
		a.failPending(ctx, t, cause)
	}
	st := statusv1.FromError(cause)
	for id, s := range a.subs {
		ctx.Send(s.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
		a.hub.Remove(ctx, id)
	}
	a.topics = map[string]*configTopic{}
	a.subs = map[string]*configSubRef{}
	a.watches = map[uint64]*configTopic{}
	a.notifyCount()
}

func (a *ConfigActor) notifyCount() {
	n := len(a.watches)
	if n == a.lastCount {
		return
	}
	a.lastCount = n
	if a.cfg.OnWatchCount != nil {
		a.cfg.OnWatchCount(n)
	}
}

// center returns the config center serving name.
func (a *ConfigActor) center(name string) (backends.ConfigCenter, error) {
	if name == "" || name == a.cfg.Name {
		if a.cfg.Center != nil {
			return a.cfg.Center, nil
		}
		name = a.cfg.Name
	}
	if c, ok := a.opened[name]; ok {
		return c, nil
	}
	if a.cfg.Open == nil {
		return nil, backends.Invalid("config name", name, "not served by this config actor")
	}
	if err := backends.ValidateName("config name", name); err != nil {
		return nil, err
	}
	if err := a.openErr[name]; err != nil {
		return nil, err
	}
	c, err := a.cfg.Open(name)
	if err == nil && c == nil {
		err = backends.Invalid("config name", name, "opened a nil config center")
	}
	if err != nil {
		err = fmt.Errorf("config: open namespace %q: %w", name, err)
		// Configuration mistakes are permanent; anything else is retried
		// on the next request.
		if errors.Is(err, backends.ErrInvalidArgument) {
			a.openErr[name] = err
		}
		return nil, err
	}
	a.opened[name] = c
	return c, nil
}

// do runs one backend call for namespace name, bounded by OpTimeout, after
// checking the gate.
func (a *ConfigActor) do(name string, f func(context.Context, backends.ConfigCenter) error) error {
	cc, err := a.center(name)
	if err != nil {
		return err
	}
	if err := a.gate.Err(); err != nil {
		return err
	}
	c, cancel := context.WithTimeout(a.base, a.cfg.OpTimeout)
	defer cancel()
	return actorOpError(f(c, cc))
}

func (a *ConfigActor) watch(ctx actor.Context, m *configv1.WatchRequest) {
	fail := func(err error) {
		respond(ctx, &configv1.WatchResponse{Status: statusv1.FromError(err)})
	}
	pid := subscriberPID(ctx, m.GetSubscriber())
	switch {
	case m.GetSubscriptionId() == "":
		fail(backends.Invalid("subscription_id", "", "must not be empty"))
		return
	case pid == nil:
		fail(backends.Invalid("subscriber", "", "a watch needs a subscriber or a sender"))
		return
	}
	var err error
	if m.GetPrefix() {
		err = backends.ValidatePrefix(m.GetKey())
	} else {
		err = backends.ValidateKey(m.GetKey())
	}
	if err != nil {
		fail(fmt.Errorf("config: watch: %w", err))
		return
	}
	cc, err := a.center(m.GetName())
	if err != nil {
		fail(err)
		return
	}
	if err := a.gate.Err(); err != nil {
		fail(err)
		return
	}
	// A subscription id used again replaces the old subscription.
	a.removeSub(ctx, m.GetSubscriptionId())

	name := m.GetName()
	if name == "" {
		name = a.cfg.Name
	}
	opts := backends.WatchOptions{Prefix: m.GetPrefix()}
	var key string
	if m.GetFromVersion() > 0 {
		opts.FromVersion = m.GetFromVersion()
		opts.Known = m.GetKnown()
		key = "sub\x00" + m.GetSubscriptionId()
	} else {
		kind := "key"
		if opts.Prefix {
			kind = "prefix"
		}
		key = name + "\x00" + kind + "\x00" + m.GetKey()
	}
	t := a.topics[key]
	if t == nil {
		t = &configTopic{key: key, center: cc, name: name, watch: m.GetKey(), opts: opts}
		a.topics[key] = t
		a.startWatch(ctx, t)
	}
	a.hub.Add(ctx, key, m.GetSubscriptionId(), pid)
	a.subs[m.GetSubscriptionId()] = &configSubRef{topic: t, pid: pid}
	if t.started {
		respond(ctx, &configv1.WatchResponse{Status: statusv1.OK()})
		return
	}
	t.pending = append(t.pending, configPending{sender: ctx.Sender(), subID: m.GetSubscriptionId()})
}

// startWatch runs the backend watch of t.
func (a *ConfigActor) startWatch(ctx actor.Context, t *configTopic) {
	a.nextID++
	t.id = a.nextID
	a.watches[t.id] = t
	a.notifyCount()
	cc, key, opts := t.center, t.watch, t.opts
	t.cancel = startTopicWatch(ctx, &a.wg, a.base, a.gen, t.id, a.cfg.OpTimeout, "config: watch set-up",
		func(c context.Context) (<-chan backends.ConfigEvent, error) { return cc.WatchWith(c, key, opts) })
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

func (a *ConfigActor) watchStarted(ctx actor.Context, m *topicWatchStarted) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil || a.topics[t.key] != t {
		return
	}
	if m.err != nil {
		// Nobody was served yet: every subscriber of the topic is pending.
		a.failPending(ctx, t, fmt.Errorf("config: watch %q: %w", t.watch, actorOpError(m.err)))
		t.cancel()
		return
	}
	t.started = true
	for _, p := range t.pending {
		if p.sender != nil {
			ctx.Send(p.sender, &configv1.WatchResponse{Status: statusv1.OK()})
		}
	}
	t.pending = nil
}

// failPending answers the pending watch requests of t with err and drops
// their subscriptions (and t with the last one).
func (a *ConfigActor) failPending(ctx actor.Context, t *configTopic, err error) {
	st := statusv1.FromError(err)
	pending := t.pending
	t.pending = nil
	for _, p := range pending {
		if s := a.subs[p.subID]; s != nil && s.topic == t {
			a.removeSub(ctx, p.subID)
		}
		if p.sender != nil {
			ctx.Send(p.sender, &configv1.WatchResponse{Status: st})
		}
	}
}

func (a *ConfigActor) watchEvent(ctx actor.Context, m *topicWatchEvent[backends.ConfigEvent]) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil || a.topics[t.key] != t {
		return
	}
	ev := &configv1.Event{Type: ConfigEventTypeToProto(m.ev.Type), Item: ConfigItemToProto(m.ev.Item)}
	a.hub.Publish(ctx, t.key, func(id string, seq uint64) any {
		return &configv1.Event{SubscriptionId: id, Seq: seq, Type: ev.Type, Item: ev.Item}
	})
}

func (a *ConfigActor) watchEnded(ctx actor.Context, m *topicWatchEnded) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil {
		return
	}
	delete(a.watches, m.id)
	a.notifyCount()
	if a.topics[t.key] != t {
		return // stopped on purpose
	}
	// The backend ended the watch by itself: its center was closed.
	a.failPending(ctx, t, fmt.Errorf("config: watch %q ended: %w", t.watch, backends.ErrClosed))
	st := statusv1.FromError(fmt.Errorf("config: watch %q ended: %w", t.watch, backends.ErrClosed))
	for id, s := range a.subs {
		if s.topic == t {
			ctx.Send(s.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
			a.removeSub(ctx, id)
		}
	}
	if a.topics[t.key] == t {
		delete(a.topics, t.key)
	}
}

// removeSub drops subscription id; the topic's backend watch stops with its
// last subscriber.
func (a *ConfigActor) removeSub(ctx actor.Context, id string) {
	s, ok := a.subs[id]
	if !ok {
		return
	}
	delete(a.subs, id)
	_, last := a.hub.Remove(ctx, id)
	t := s.topic
	for i, p := range t.pending {
		if p.subID == id {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			if p.sender != nil {
				ctx.Send(p.sender, &configv1.WatchResponse{Status: statusv1.FromError(
					fmt.Errorf("config: watch %q: unsubscribed before the watch started: %w", t.watch, context.Canceled))})
			}
			break
		}
	}
	if last && a.topics[t.key] == t {
		delete(a.topics, t.key)
		t.cancel()
	}
}

// subscriberStopped drops every subscription of a stopped subscriber.
func (a *ConfigActor) subscriberStopped(ctx actor.Context, pid *actor.PID) {
	for id, s := range a.subs {
		if s.pid.Equal(pid) {
			a.removeSub(ctx, id)
		}
	}
	a.hub.RemovePID(ctx, pid) // nothing left normally; keeps the hub exact
}

// ConfigItemToProto converts a backends.ConfigItem.
func ConfigItemToProto(it backends.ConfigItem) *configv1.Item {
	return &configv1.Item{Key: it.Key, Value: it.Value, Version: it.Version, Stale: it.Stale}
}

// ConfigItemFromProto converts a configv1.Item (nil is the zero item).
func ConfigItemFromProto(it *configv1.Item) backends.ConfigItem {
	return backends.ConfigItem{Key: it.GetKey(), Value: it.GetValue(), Version: it.GetVersion(), Stale: it.GetStale()}
}

// ConfigEventTypeToProto converts a backends.ConfigEventType.
func ConfigEventTypeToProto(t backends.ConfigEventType) configv1.EventType {
	switch t {
	case backends.ConfigPut:
		return configv1.EventType_EVENT_TYPE_PUT
	case backends.ConfigDelete:
		return configv1.EventType_EVENT_TYPE_DELETE
	case backends.ConfigResync:
		return configv1.EventType_EVENT_TYPE_RESYNC
	}
	return configv1.EventType_EVENT_TYPE_UNSPECIFIED
}

// ConfigEventTypeFromProto converts a configv1.EventType (0 for unknown).
func ConfigEventTypeFromProto(t configv1.EventType) backends.ConfigEventType {
	switch t {
	case configv1.EventType_EVENT_TYPE_PUT:
		return backends.ConfigPut
	case configv1.EventType_EVENT_TYPE_DELETE:
		return backends.ConfigDelete
	case configv1.EventType_EVENT_TYPE_RESYNC:
		return backends.ConfigResync
	}
	return 0
}

// LayerToProto converts a backends layer name (LayerSystem, …).
func LayerToProto(layer string) configv1.Layer {
	switch layer {
	case backends.LayerSystem:
		return configv1.Layer_LAYER_SYSTEM
	case backends.LayerComponent:
		return configv1.Layer_LAYER_COMPONENT
	case backends.LayerInstance:
		return configv1.Layer_LAYER_INSTANCE
	}
	return configv1.Layer_LAYER_UNSPECIFIED
}

// LayerFromProto converts a configv1.Layer to a backends layer name ("" for
// unspecified).
func LayerFromProto(l configv1.Layer) string {
	switch l {
	case configv1.Layer_LAYER_SYSTEM:
		return backends.LayerSystem
	case configv1.Layer_LAYER_COMPONENT:
		return backends.LayerComponent
	case configv1.Layer_LAYER_INSTANCE:
		return backends.LayerInstance
	}
	return ""
}

func itemOrNil(it backends.ConfigItem, err error) *configv1.Item {
	if err != nil {
		return nil
	}
	return ConfigItemToProto(it)
}

func itemsProto(items []backends.ConfigItem) []*configv1.Item {
	if items == nil {
		return nil
	}
	out := make([]*configv1.Item, len(items))
	for i, it := range items {
		out[i] = ConfigItemToProto(it)
	}
	return out
}
