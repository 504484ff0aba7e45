package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// DiscoveryActorConfig configures the service discovery actor.
type DiscoveryActorConfig struct {
	// NewDiscovery creates the backend discovery. The actor calls it once
	// (again only after a failure that was not an invalid argument) with
	// Options, after installing its own OnRegistration hook, and closes the
	// result (when it implements backends.Closer) when the actor stops —
	// which deregisters what it still holds. Required.
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
// # Watches
//
// There is one backend Watch per service name, shared by every local
// subscriber through a Hub, started by the first subscriber and stopped
// with the last (UnsubscribeRequest, or the subscriber stopped: subscribers
// are death-watched). The actor keeps the service's current instances as
// the watch reports them. A subscriber's first event is always a SNAPSHOT:
// the backend's own snapshot for those who subscribed before it arrived,
// and for later ones a snapshot built from the actor's view — consistent
// with the events that follow, though it may lag a change the shared watch
// has not delivered yet (that change then follows as its own event). Then
// come ADDED, UPDATED and REMOVED events in order; each is acknowledged with
// subscriptionv1.Ack.
//
// A subscriber more than Window events behind is skipped, so it cannot
// delay the others; once it has caught up it receives a new SNAPSHOT of the
// actor's current view (instead of a bare subscriptionv1.Resync) and should
// replace what it holds with it.
//
// When the backend watch ends by itself, or the actor stops or restarts,
// every affected subscriber gets subscriptionv1.Ended (seq 0).
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
	gate      *BackendGate
	hub       *Hub
	topics    map[string]*discTopic  // service name → topic with subscribers
	watches   map[uint64]*discTopic  // running backend watch goroutines
	subs      map[string]*discSubRef // subscription id → subscription
	nextID    uint64
	gen       uint64
	base      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	lastCount int
}

type discTopic struct {
	service  string
	id       uint64
	cancel   context.CancelFunc
	started  bool
	pending  []discPending
	view     map[string]backends.ServiceInfo
	haveSnap bool
	rev      uint64
}

type discPending struct {
	sender *actor.PID
	subID  string
}

type discSubRef struct {
	topic *discTopic
	pid   *actor.PID
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
		cfg.Logger = DiscardLogger()
	}
	a := &DiscoveryActor{cfg: cfg, log: cfg.Logger, regSubs: map[string]*actor.PID{}}
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
		a.teardown(ctx, backends.Unavailable("discovery actor", errors.New("restarted")))
	case *actor.Stopping:
		a.teardown(ctx, fmt.Errorf("discovery actor stopped: %w", backends.ErrClosed))
		if cl, ok := a.disc.(backends.Closer); ok {
			if err := cl.Close(); err != nil {
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
		respond(ctx, &discoveryv1.DiscoverResponse{Status: statusv1.FromError(err), Instances: servicesProto(list)})
	case *discoveryv1.HealthCheckRequest:
		err := a.do(ctx, func(c context.Context, d backends.ServiceDiscovery) error { return d.HealthCheck(c) })
		respond(ctx, &discoveryv1.HealthCheckResponse{Status: statusv1.FromError(err)})
	case *discRegistration:
		a.registrationEvent(ctx, m.ev)

	case *discoveryv1.WatchRequest:
		a.watch(ctx, m)
	case *subscriptionv1.UnsubscribeRequest:
		a.removeSub(ctx, m.GetSubscriptionId())
		respond(ctx, &subscriptionv1.UnsubscribeResponse{Status: statusv1.OK()})
	case *subscriptionv1.Ack:
		a.hub.Ack(ctx, m.GetSubscriptionId(), m.GetSeq(), a.resync)
	case *actor.Terminated:
		a.subscriberStopped(ctx, m.Who)
	case *topicWatchStarted:
		a.watchStarted(ctx, m)
	case *topicWatchEvent[backends.ServiceEvent]:
		a.watchEvent(ctx, m)
	case *topicWatchEnded:
		a.watchEnded(ctx, m)
	case *WatchStatsRequest:
		respond(ctx, &WatchStats{BackendWatches: len(a.watches), Topics: len(a.topics), Subscriptions: len(a.subs)})
	default:
		rejectUnknown(ctx, m)
	}
}

func (a *DiscoveryActor) start(ctx actor.Context) {
	a.gate = NewBackendGate(a.cfg.Backend)
	a.gate.Subscribe(ctx, a.cfg.Supervisor)
	a.hub = NewHub()
	a.hub.Window = a.cfg.Window
	a.topics = map[string]*discTopic{}
	a.watches = map[uint64]*discTopic{}
	a.subs = map[string]*discSubRef{}
	a.base, a.cancel = context.WithCancel(context.Background())
}

// teardown ends every subscription and waits for every watch goroutine.
func (a *DiscoveryActor) teardown(ctx actor.Context, cause error) {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	a.gen++
	for _, t := range a.topics {
		a.failPending(ctx, t, cause)
	}
	st := statusv1.FromError(cause)
	for id, s := range a.subs {
		ctx.Send(s.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
		a.hub.Remove(ctx, id)
	}
	a.topics = map[string]*discTopic{}
	a.subs = map[string]*discSubRef{}
	a.watches = map[uint64]*discTopic{}
	a.notifyCount()
}

func (a *DiscoveryActor) notifyCount() {
	n := len(a.watches)
	if n == a.lastCount {
		return
	}
	a.lastCount = n
	if a.cfg.OnWatchCount != nil {
		a.cfg.OnWatchCount(n)
	}
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
	c, cancel := context.WithTimeout(a.base, a.cfg.OpTimeout)
	defer cancel()
	return actorOpError(f(c, d))
}

func (a *DiscoveryActor) register(ctx actor.Context, m *discoveryv1.RegisterRequest) {
	svc := ServiceInfoFromProto(m.GetService())
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
	pid := subscriberPID(ctx, m.GetSubscriber())
	switch {
	case m.GetSubscriptionId() == "":
		fail(backends.Invalid("subscription_id", "", "must not be empty"))
		return
	case pid == nil:
		fail(backends.Invalid("subscriber", "", "a watch needs a subscriber or a sender"))
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
	a.removeSub(ctx, m.GetSubscriptionId())
	t := a.topics[service]
	if t == nil {
		t = &discTopic{service: service, view: map[string]backends.ServiceInfo{}}
		a.topics[service] = t
		a.nextID++
		t.id = a.nextID
		a.watches[t.id] = t
		a.notifyCount()
		t.cancel = startTopicWatch(ctx, &a.wg, a.base, a.gen, t.id, a.cfg.OpTimeout, "discovery: watch set-up",
			func(c context.Context) (<-chan backends.ServiceEvent, error) { return d.Watch(c, service) })
	}
	id := m.GetSubscriptionId()
	a.hub.Add(ctx, service, id, pid)
	a.subs[id] = &discSubRef{topic: t, pid: pid}
	if !t.started {
		t.pending = append(t.pending, discPending{sender: ctx.Sender(), subID: id})
		return
	}
	respond(ctx, &discoveryv1.WatchResponse{Status: statusv1.OK()})
	if t.haveSnap {
		// A late subscriber starts from the actor's view; one that came
		// before the backend's snapshot gets that one through Publish.
		a.hub.SendTo(ctx, id, a.snapshot(t))
	}
}

// snapshot builds a SNAPSHOT event of t's current view.
func (a *DiscoveryActor) snapshot(t *discTopic) func(id string, seq uint64) any {
	list := slices.SortedFunc(maps.Values(t.view), func(x, y backends.ServiceInfo) int { return strings.Compare(x.ID, y.ID) })
	instances := servicesProto(list)
	if instances == nil {
		instances = []*discoveryv1.ServiceInfo{}
	}
	rev := t.rev
	return func(id string, seq uint64) any {
		return &discoveryv1.ServiceEvent{SubscriptionId: id, Seq: seq,
			Type: discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, Instances: instances, Revision: rev}
	}
}

// resync is what a subscriber that fell behind gets once it caught up: the
// current snapshot, from which it can rebuild its state without a read.
func (a *DiscoveryActor) resync(id string, seq uint64) any {
	if s := a.subs[id]; s != nil && s.topic.haveSnap {
		return a.snapshot(s.topic)(id, seq)
	}
	return resyncFor(id, seq)
}

func (a *DiscoveryActor) watchStarted(ctx actor.Context, m *topicWatchStarted) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil || a.topics[t.service] != t {
		return
	}
	if m.err != nil {
		a.failPending(ctx, t, fmt.Errorf("discovery: watch %q: %w", t.service, actorOpError(m.err)))
		t.cancel()
		return
	}
	t.started = true
	for _, p := range t.pending {
		if p.sender != nil {
			ctx.Send(p.sender, &discoveryv1.WatchResponse{Status: statusv1.OK()})
		}
	}
	t.pending = nil
}

func (a *DiscoveryActor) failPending(ctx actor.Context, t *discTopic, err error) {
	st := statusv1.FromError(err)
	pending := t.pending
	t.pending = nil
	for _, p := range pending {
		if s := a.subs[p.subID]; s != nil && s.topic == t {
			a.removeSub(ctx, p.subID)
		}
		if p.sender != nil {
			ctx.Send(p.sender, &discoveryv1.WatchResponse{Status: st})
		}
	}
}

func (a *DiscoveryActor) watchEvent(ctx actor.Context, m *topicWatchEvent[backends.ServiceEvent]) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil || a.topics[t.service] != t {
		return
	}
	ev := m.ev
	t.rev = max(t.rev, ev.Revision)
	out := &discoveryv1.ServiceEvent{Revision: ev.Revision}
	switch ev.Type {
	case backends.ServiceSnapshot:
		t.view = make(map[string]backends.ServiceInfo, len(ev.Instances))
		for _, s := range ev.Instances {
			t.view[s.ID] = s
		}
		t.haveSnap = true
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT
		out.Instances = servicesProto(ev.Instances)
		if out.Instances == nil {
			out.Instances = []*discoveryv1.ServiceInfo{}
		}
	case backends.ServiceAdded, backends.ServiceUpdated:
		t.view[ev.Service.ID] = ev.Service
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED
		if ev.Type == backends.ServiceUpdated {
			out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED
		}
		out.Service = ServiceInfoToProto(ev.Service)
	case backends.ServiceRemoved:
		delete(t.view, ev.Service.ID)
		out.Type = discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED
		out.Service = ServiceInfoToProto(ev.Service)
	default:
		a.log.Debug("baton: dropped a service event of unknown type", "service", t.service, "type", ev.Type)
		return
	}
	a.hub.Publish(ctx, t.service, func(id string, seq uint64) any {
		return &discoveryv1.ServiceEvent{SubscriptionId: id, Seq: seq, Type: out.Type,
			Service: out.Service, Instances: out.Instances, Revision: out.Revision}
	})
}

func (a *DiscoveryActor) watchEnded(ctx actor.Context, m *topicWatchEnded) {
	t := a.watches[m.id]
	if m.gen != a.gen || t == nil {
		return
	}
	delete(a.watches, m.id)
	a.notifyCount()
	if a.topics[t.service] != t {
		return // stopped on purpose
	}
	cause := fmt.Errorf("discovery: watch %q ended: %w", t.service, backends.ErrClosed)
	a.failPending(ctx, t, cause)
	st := statusv1.FromError(cause)
	for id, s := range a.subs {
		if s.topic == t {
			ctx.Send(s.pid, &subscriptionv1.Ended{SubscriptionId: id, Status: st})
			a.removeSub(ctx, id)
		}
	}
	if a.topics[t.service] == t {
		delete(a.topics, t.service)
	}
}

func (a *DiscoveryActor) removeSub(ctx actor.Context, id string) {
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
				ctx.Send(p.sender, &discoveryv1.WatchResponse{Status: statusv1.FromError(
					fmt.Errorf("discovery: watch %q: unsubscribed before the watch started: %w", t.service, context.Canceled))})
			}
			break
		}
	}
	if last && a.topics[t.service] == t {
		delete(a.topics, t.service)
		t.cancel()
	}
}

func (a *DiscoveryActor) subscriberStopped(ctx actor.Context, pid *actor.PID) {
	for id, s := range a.subs {
		if s.pid.Equal(pid) {
			a.removeSub(ctx, id)
		}
	}
	a.hub.RemovePID(ctx, pid)
}

// ServiceInfoToProto converts a backends.ServiceInfo. A weight beyond the
// int32 range is clamped; callers that care reject it first.
func ServiceInfoToProto(s backends.ServiceInfo) *discoveryv1.ServiceInfo {
	w := s.Weight
	switch {
	case w > math.MaxInt32:
		w = math.MaxInt32
	case w < math.MinInt32:
		w = math.MinInt32
	}
	return &discoveryv1.ServiceInfo{Id: s.ID, Name: s.Name, Address: s.Address, Metadata: s.Metadata,
		Tags: s.Tags, Version: s.Version, Weight: int32(w)}
}

// ServiceInfoFromProto converts a discoveryv1.ServiceInfo (nil is the zero
// value). Empty metadata and tags become nil.
func ServiceInfoFromProto(s *discoveryv1.ServiceInfo) backends.ServiceInfo {
	out := backends.ServiceInfo{ID: s.GetId(), Name: s.GetName(), Address: s.GetAddress(),
		Version: s.GetVersion(), Weight: int(s.GetWeight())}
	if len(s.GetMetadata()) > 0 {
		out.Metadata = maps.Clone(s.GetMetadata())
	}
	if len(s.GetTags()) > 0 {
		out.Tags = slices.Clone(s.GetTags())
	}
	return out
}

// ServiceEventFromProto converts a discoveryv1.ServiceEvent (type 0 when
// the event's type is unknown).
func ServiceEventFromProto(ev *discoveryv1.ServiceEvent) backends.ServiceEvent {
	out := backends.ServiceEvent{Revision: ev.GetRevision()}
	switch ev.GetType() {
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT:
		out.Type = backends.ServiceSnapshot
		out.Instances = make([]backends.ServiceInfo, 0, len(ev.GetInstances()))
		for _, s := range ev.GetInstances() {
			out.Instances = append(out.Instances, ServiceInfoFromProto(s))
		}
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED:
		out.Type = backends.ServiceAdded
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED:
		out.Type = backends.ServiceUpdated
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED:
		out.Type = backends.ServiceRemoved
	}
	if ev.GetService() != nil {
		out.Service = ServiceInfoFromProto(ev.GetService())
	}
	return out
}

func servicesProto(list []backends.ServiceInfo) []*discoveryv1.ServiceInfo {
	if list == nil {
		return nil
	}
	out := make([]*discoveryv1.ServiceInfo, len(list))
	for i, s := range list {
		out[i] = ServiceInfoToProto(s)
	}
	return out
}

// RegistrationEventFromProto converts a discoveryv1.RegistrationEvent.
func RegistrationEventFromProto(ev *discoveryv1.RegistrationEvent) backends.RegistrationEvent {
	out := backends.RegistrationEvent{ServiceID: ev.GetServiceId(), ServiceName: ev.GetServiceName()}
	switch ev.GetState() {
	case discoveryv1.RegistrationState_REGISTRATION_STATE_LOST:
		out.State = backends.RegistrationLost
	case discoveryv1.RegistrationState_REGISTRATION_STATE_RESTORED:
		out.State = backends.RegistrationRestored
	}
	if ev.GetCause() != nil {
		out.Err = ev.GetCause().Err()
	}
	return out
}
