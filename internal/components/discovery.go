package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/protoconv"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// DiscoveryActorConfig configures the service discovery actor.
type DiscoveryActorConfig struct {
	// NewDiscovery creates the backend discovery. The actor calls it once
	// (again only after a failure that was not an invalid argument) with
	// Options, after installing its own OnRegistration hook, and closes the
	// result when the actor stops — which deregisters what it still holds.
	// Required.
	NewDiscovery func(opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error)
	// Options are passed to NewDiscovery. An OnRegistration set here is
	// still called, after the actor has queued its own notification.
	Options backends.DiscoveryOptions
	// Backend is "redis" or "etcd", for the connector gate.
	Backend string
	// Supervisor is the connector supervisor; nil disables the gate.
	Supervisor *actor.PID
	// OpTimeout bounds one backend call made from the mailbox, and the
	// set-up of one backend watch. Default: 5s.
	OpTimeout time.Duration
	// DefaultTTL is the registration TTL of a RegisterRequest without one.
	// Default: 0, which leaves the choice to the backend
	// (backends.DefaultRegistrationTTL).
	DefaultTTL time.Duration
	// Window is how many events a subscriber may leave unacknowledged
	// before it is skipped (and later sent a fresh snapshot). Default:
	// DefaultSubscriberWindow.
	Window uint64
	// OnWatchCount, if set, is called from the actor with the number of
	// backend watches it runs, every time that number changes. It must not
	// block.
	OnWatchCount func(n int)
	// Logger. Default: discard.
	Logger *slog.Logger
}

// DiscoveryActor serves discoveryv1 requests with one backend
// ServiceDiscovery, which it creates itself so that it can receive the
// registration loss/restoration reports and forward each, as a
// discoveryv1.RegistrationEvent, to the subscriber named in the
// RegisterRequest that made the registration.
//
// There is one backend Watch per service name, shared by every local
// subscriber; a subscriber's first event is a SNAPSHOT (docs/actors.md has
// the protocol).
//
// The props hold the actor's state across supervisor restarts (the backend
// discovery and its registrations survive; subscriptions are ended): spawn
// them once.
type DiscoveryActor struct {
	cfg     DiscoveryActorConfig
	log     *slog.Logger
	disc    backends.ServiceDiscovery
	discErr error                 // a permanent creation failure
	regSubs map[string]*actor.PID // service id → who hears about its registration

	// Per incarnation.
	gate *BackendGate

	// Watch subscriptions: one topic (and backend watch) per service name.
	topics *topicSet[discView]
}

// discView is what the actor knows of a watched service: the instances as
// the backend watch reported them.
type discView struct {
	instances map[string]backends.ServiceInfo // by id
	haveSnap  bool                            // the backend's snapshot arrived
	rev       uint64
}

// discRegistration carries a backend registration report to the actor.
type discRegistration struct{ ev backends.RegistrationEvent }

// NewDiscoveryActorProps returns the props of a discovery actor.
func NewDiscoveryActorProps(cfg DiscoveryActorConfig) *actor.Props {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.DefaultTTL < 0 {
		cfg.DefaultTTL = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &DiscoveryActor{cfg: cfg, log: cfg.Logger, regSubs: map[string]*actor.PID{}}
	a.topics = &topicSet[discView]{
		kind:    "discovery",
		answer:  func(st *statusv1.Status) any { return &discoveryv1.WatchResponse{Status: st} },
		resync:  a.resync,
		setup:   cfg.OpTimeout,
		onCount: cfg.OnWatchCount,
	}
	return actor.PropsFromProducer(func() actor.Actor { return a })
}

// Receive implements actor.Actor.
func (a *DiscoveryActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	if a.gate != nil && a.gate.Handle(ctx, msg) {
		return
	}
	switch m := msg.(type) {
	case *actor.Started:
		a.start(ctx)
		if _, err := a.discovery(ctx); err != nil {
			a.log.Warn("baton: create discovery", "err", err)
		}
	case *DiscoverySettings:
		if m.DefaultTTL > 0 {
			a.cfg.DefaultTTL = m.DefaultTTL
		}
	case *actor.Restarting:
		a.topics.teardown(ctx, backends.Unavailable("discovery actor", errors.New("restarted")))
	case *actor.Stopping:
		a.topics.teardown(ctx, fmt.Errorf("discovery actor stopped: %w", backends.ErrClosed))
		if a.disc != nil {
			if err := a.disc.Close(); err != nil {
				a.log.Debug("baton: close discovery", "err", err)
			}
		}
		a.disc = nil
		a.discErr = fmt.Errorf("discovery actor stopped: %w", backends.ErrClosed)

	case *discoveryv1.RegisterRequest:
		a.register(ctx, m)
	case *discoveryv1.DeregisterRequest:
		err := a.do(ctx, func(c context.Context, d backends.ServiceDiscovery) error {
			return d.Deregister(c, m.GetServiceId())
		})
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			delete(a.regSubs, m.GetServiceId())
		}
		respond(ctx, &discoveryv1.DeregisterResponse{Status: statusv1.FromError(err)})
	case *discoveryv1.DiscoverRequest:
		var list []backends.ServiceInfo
		err := a.do(ctx, func(c context.Context, d backends.ServiceDiscovery) (err error) {
			list, err = d.Discover(c, m.GetServiceName())
			return err
		})
		respond(ctx, &discoveryv1.DiscoverResponse{Status: statusv1.FromError(err), Instances: protoconv.ServiceInfosToProto(list)})
	case *discoveryv1.HealthCheckRequest:
		err := a.do(ctx, func(c context.Context, d backends.ServiceDiscovery) error { return d.HealthCheck(c) })
		respond(ctx, &discoveryv1.HealthCheckResponse{Status: statusv1.FromError(err)})
	case *discRegistration:
		a.registrationEvent(ctx, m.ev)

	case *discoveryv1.WatchRequest:
		a.watch(ctx, m)
	case *topicWatchEvent[backends.ServiceEvent]:
		a.watchEvent(ctx, m)
	default:
		if !a.topics.handle(ctx, m) {
			rejectUnknown(ctx, m)
		}
	}
}

func (a *DiscoveryActor) start(ctx actor.Context) {
	a.gate = NewBackendGate(a.cfg.Backend)
	a.gate.Subscribe(ctx, a.cfg.Supervisor)
	a.topics.start(a.cfg.Window)
}

// discovery returns the backend discovery, creating it on first use.
func (a *DiscoveryActor) discovery(ctx actor.Context) (backends.ServiceDiscovery, error) {
	if a.disc != nil {
		return a.disc, nil
	}
	if a.discErr != nil {
		return nil, a.discErr
	}
	if a.cfg.NewDiscovery == nil {
		a.discErr = backends.Invalid("discovery factory", "<nil>", "must be set")
		return nil, a.discErr
	}
	opts := a.cfg.Options
	user := opts.OnRegistration
	self, root := ctx.Self(), ctx.ActorSystem().Root
	// Called from the backend's goroutine: hand the report to the mailbox,
	// which owns the map of who is told.
	opts.OnRegistration = func(ev backends.RegistrationEvent) {
		root.Send(self, &discRegistration{ev: ev})
		if user != nil {
			user(ev)
		}
	}
	d, err := a.cfg.NewDiscovery(opts)
	if err == nil && d == nil {
		err = backends.Invalid("discovery factory", "<nil>", "returned a nil discovery")
	}
	if err != nil {
		err = fmt.Errorf("discovery: create: %w", err)
		if errors.Is(err, backends.ErrInvalidArgument) {
			a.discErr = err
		}
		return nil, err
	}
	a.disc = d
	return d, nil
}

// do runs one backend call, bounded by OpTimeout, after checking the gate.
func (a *DiscoveryActor) do(ctx actor.Context, f func(context.Context, backends.ServiceDiscovery) error) error {
	d, err := a.discovery(ctx)
	if err != nil {
		return err
	}
	if err := a.gate.Err(); err != nil {
		return err
	}
	c, cancel := context.WithTimeout(a.topics.base, a.cfg.OpTimeout)
	defer cancel()
	return actorOpError(f(c, d))
}

func (a *DiscoveryActor) register(ctx actor.Context, m *discoveryv1.RegisterRequest) {
	svc := protoconv.ServiceInfoFromProto(m.GetService())
	ttl := m.GetTtl().AsDuration()
	if ttl == 0 {
		ttl = a.cfg.DefaultTTL
	}
	err := a.do(ctx, func(c context.Context, d backends.ServiceDiscovery) error {
		return d.Register(c, svc, ttl)
	})
	if err == nil {
		if s := m.GetSubscriber(); s.GetId() != "" {
			a.regSubs[svc.ID] = actor.NewPID(s.GetAddress(), s.GetId())
		} else {
			delete(a.regSubs, svc.ID)
		}
	}
	respond(ctx, &discoveryv1.RegisterResponse{Status: statusv1.FromError(err)})
}

func (a *DiscoveryActor) registrationEvent(ctx actor.Context, ev backends.RegistrationEvent) {
	pid := a.regSubs[ev.ServiceID]
	if pid == nil {
		return
	}
	out := &discoveryv1.RegistrationEvent{ServiceId: ev.ServiceID, ServiceName: ev.ServiceName}
	switch ev.State {
	case backends.RegistrationLost:
		out.State = discoveryv1.RegistrationState_REGISTRATION_STATE_LOST
		cause := ev.Err
		if cause == nil {
			cause = backends.Unavailable("discovery: registration lost", nil)
		}
		out.Cause = statusv1.FromError(cause)
	case backends.RegistrationRestored:
		out.State = discoveryv1.RegistrationState_REGISTRATION_STATE_RESTORED
	}
	ctx.Send(pid, out)
}

func (a *DiscoveryActor) watch(ctx actor.Context, m *discoveryv1.WatchRequest) {
	fail := func(err error) {
		respond(ctx, &discoveryv1.WatchResponse{Status: statusv1.FromError(err)})
	}
	pid, err := watchSubscriber(ctx, m.GetSubscriptionId(), m.GetSubscriber())
	if err != nil {
		fail(err)
		return
	}
	service := m.GetServiceName()
	if err := backends.ValidateName("service name", service); err != nil {
		fail(fmt.Errorf("discovery: watch: %w", err))
		return
	}
	d, err := a.discovery(ctx)
	if err != nil {
		fail(err)
		return
	}
	if err := a.gate.Err(); err != nil {
		fail(err)
		return
	}
	id := m.GetSubscriptionId()
	t, answered := subscribeTopic(ctx, a.topics, id, pid, service, service,
		discView{instances: map[string]backends.ServiceInfo{}},
		func(c context.Context) (<-chan backends.ServiceEvent, error) { return d.Watch(c, service) })
	if answered && t.state.haveSnap {
		// A late subscriber starts from the actor's view; one that came
		// before the backend's snapshot gets that one through Publish.
		a.topics.hub.SendTo(ctx, id, a.snapshot(&t.state))
	}
}

// snapshot builds a SNAPSHOT event of the view v.
func (a *DiscoveryActor) snapshot(v *discView) func(id string, seq uint64) any {
	list := slices.SortedFunc(maps.Values(v.instances), func(x, y backends.ServiceInfo) int { return strings.Compare(x.ID, y.ID) })
	instances := protoconv.ServiceInfosToProto(list)
	if instances == nil {
		instances = []*discoveryv1.ServiceInfo{}
	}
	rev := v.rev
	return func(id string, seq uint64) any {
		return &discoveryv1.ServiceEvent{SubscriptionId: id, Seq: seq,
			Type: discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, Instances: instances, Revision: rev}
	}
}

// resync is what a subscriber that fell behind gets once it caught up: the
// current snapshot, from which it can rebuild its state without a read.
func (a *DiscoveryActor) resync(id string, seq uint64) any {
	if s := a.topics.subs[id]; s != nil && s.topic.state.haveSnap {
		return a.snapshot(&s.topic.state)(id, seq)
	}
	return resyncFor(id, seq)
}

func (a *DiscoveryActor) watchEvent(ctx actor.Context, m *topicWatchEvent[backends.ServiceEvent]) {
	t := a.topics.live(m.gen, m.id)
	if t == nil {
		return
	}
	v := &t.state
	ev := m.ev
	v.rev = max(v.rev, ev.Revision)
	out := &discoveryv1.ServiceEvent{Revision: ev.Revision}
	switch ev.Type {
	case backends.ServiceSnapshot:
		v.instances = make(map[string]backends.ServiceInfo, len(ev.Instances))
		for _, s := range ev.Instances {
			v.instances[s.ID] = s
		}
		v.haveSnap = true
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT
		out.Instances = protoconv.ServiceInfosToProto(ev.Instances)
		if out.Instances == nil {
			out.Instances = []*discoveryv1.ServiceInfo{}
		}
	case backends.ServiceAdded, backends.ServiceUpdated:
		v.instances[ev.Service.ID] = ev.Service
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED
		if ev.Type == backends.ServiceUpdated {
			out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED
		}
		out.Service = protoconv.ServiceInfoToProto(ev.Service)
	case backends.ServiceRemoved:
		delete(v.instances, ev.Service.ID)
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED
		out.Service = protoconv.ServiceInfoToProto(ev.Service)
	default:
		a.log.Debug("baton: dropped a service event of unknown type", "service", t.key, "type", ev.Type)
		return
	}
	a.topics.hub.Publish(ctx, t.key, func(id string, seq uint64) any {
		return &discoveryv1.ServiceEvent{SubscriptionId: id, Seq: seq, Type: out.Type,
			Service: out.Service, Instances: out.Instances, Revision: out.Revision}
	})
}
