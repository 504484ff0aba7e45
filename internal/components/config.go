package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/layered"
	"github.com/baton-go/baton/internal/protoconv"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
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
	// each name at most once, keeps it, and closes it when the actor stops.
	// Nil: only Center is served and
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

// AskWatchStats asks the config or discovery actor at pid for its
// WatchStats, within ctx (5s when ctx has no deadline).
func AskWatchStats(ctx context.Context, root *actor.RootContext, pid *actor.PID) (*WatchStats, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	res, err := root.RequestFuture(pid, &WatchStatsRequest{}, timeout).Result()
	if err != nil {
		return nil, backends.Unavailable("watch stats", err)
	}
	st, ok := res.(*WatchStats)
	if !ok {
		return nil, backends.Invalid("reply", protoconv.MessageName(res), "not WatchStats")
	}
	return st, nil
}

// ConfigActor serves configv1 requests for one or more config namespaces.
// Each request is one backend call made from the mailbox, bounded by
// OpTimeout; running out of that time is reported as unavailable, never as
// the caller's deadline. A SetRequest with expected_version is a
// compare-and-set and answers the new item; without it the write is
// unconditional and the answered item has version 0, because
// backends.ConfigCenter.Set reports none. ResolveRequest uses
// layered.Resolve.
//
// Watches with from_version 0 share one backend watch per (namespace,
// key, prefix flag); a replay from a version gets its own. The subscription
// protocol (events, acknowledgements, skipped subscribers, Ended) is in
// docs/actors.md.
//
// The props hold the actor's state across supervisor restarts (opened
// namespaces survive; subscriptions are ended): spawn them once.
type ConfigActor struct {
	cfg     ConfigActorConfig
	log     *slog.Logger
	opened  map[string]backends.ConfigCenter // by Open, closed on stop
	openErr map[string]error

	// Per incarnation.
	gate *BackendGate

	// Watch subscriptions; one backend watch per topic, nothing kept per
	// topic beyond that.
	topics *topicSet[struct{}]
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
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &ConfigActor{cfg: cfg, log: cfg.Logger, opened: map[string]backends.ConfigCenter{}, openErr: map[string]error{}}
	a.topics = &topicSet[struct{}]{
		kind:    "config",
		answer:  func(st *statusv1.Status) any { return &configv1.WatchResponse{Status: st} },
		resync:  resyncFor,
		setup:   cfg.OpTimeout,
		onCount: cfg.OnWatchCount,
	}
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
		a.topics.teardown(ctx, backends.Unavailable("config actor", errors.New("restarted")))
	case *actor.Stopping:
		a.topics.teardown(ctx, fmt.Errorf("config actor stopped: %w", backends.ErrClosed))
		for name, c := range a.opened {
			if err := c.Close(); err != nil {
				a.log.Debug("baton: close config namespace", "name", name, "err", err)
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
		respond(ctx, &configv1.ListResponse{Status: statusv1.FromError(err), Items: protoconv.ConfigItemsToProto(items)})
	case *configv1.HistoryRequest:
		var items []backends.ConfigItem
		err := a.do(m.GetName(), func(c context.Context, cc backends.ConfigCenter) (err error) {
			items, err = cc.History(c, m.GetKey(), int(min(m.GetLimit(), math.MaxInt32)))
			return err
		})
		respond(ctx, &configv1.HistoryResponse{Status: statusv1.FromError(err), Items: protoconv.ConfigItemsToProto(items)})
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
			it, layer, err = layered.Resolve(c, cc, m.GetComponent(), m.GetInstance(), m.GetKey())
			return err
		})
		respond(ctx, &configv1.ResolveResponse{Status: statusv1.FromError(err), Item: itemOrNil(it, err), Layer: protoconv.LayerToProto(layer)})

	case *configv1.WatchRequest:
		a.watch(ctx, m)
	case *topicWatchEvent[backends.ConfigEvent]:
		a.watchEvent(ctx, m)
	default:
		if !a.topics.handle(ctx, m) {
			rejectUnknown(ctx, m)
		}
	}
}

// start sets up one incarnation of the actor.
func (a *ConfigActor) start(ctx actor.Context) {
	a.gate = NewBackendGate(a.cfg.Backend)
	a.gate.Subscribe(ctx, a.cfg.Supervisor)
	a.topics.start(a.cfg.Window)
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
	c, cancel := context.WithTimeout(a.topics.base, a.cfg.OpTimeout)
	defer cancel()
	return actorOpError(f(c, cc))
}

func (a *ConfigActor) watch(ctx actor.Context, m *configv1.WatchRequest) {
	fail := func(err error) {
		respond(ctx, &configv1.WatchResponse{Status: statusv1.FromError(err)})
	}
	pid, err := watchSubscriber(ctx, m.GetSubscriptionId(), m.GetSubscriber())
	if err != nil {
		fail(err)
		return
	}
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
	// A subscription id used again replaces the old subscription.
	watched := m.GetKey()
	subscribeTopic(ctx, a.topics, m.GetSubscriptionId(), pid, key, watched, struct{}{},
		func(c context.Context) (<-chan backends.ConfigEvent, error) { return cc.WatchWith(c, watched, opts) })
}

func (a *ConfigActor) watchEvent(ctx actor.Context, m *topicWatchEvent[backends.ConfigEvent]) {
	t := a.topics.live(m.gen, m.id)
	if t == nil {
		return
	}
	ev := &configv1.Event{Type: protoconv.ConfigEventTypeToProto(m.ev.Type), Item: protoconv.ConfigItemToProto(m.ev.Item)}
	a.topics.hub.Publish(ctx, t.key, func(id string, seq uint64) any {
		return &configv1.Event{SubscriptionId: id, Seq: seq, Type: ev.Type, Item: ev.Item}
	})
}

func itemOrNil(it backends.ConfigItem, err error) *configv1.Item {
	if err != nil {
		return nil
	}
	return protoconv.ConfigItemToProto(it)
}
