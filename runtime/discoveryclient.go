package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/components"
	"github.com/baton-go/baton/internal/protoconv"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// DiscoveryClient is the typed facade of a discovery actor: it implements
// backends.ServiceDiscovery by messaging the actor, with the backends'
// errors and semantics. It is safe for concurrent use.
//
// Registrations made through a client belong to it: Deregister accepts only
// those (ErrNotFound otherwise) and Close deregisters what is left. The
// actor keeps them alive and self-healing; their loss and restoration are
// reported to DiscoveryOptions.OnRegistration, one call at a time.
type DiscoveryClient struct {
	root *actor.RootContext
	pid  *actor.PID
	opts backends.DiscoveryOptions

	life context.Context
	stop context.CancelFunc

	mu     sync.Mutex
	closed bool
	regs   map[string]struct{} // ids registered through this client
	regSub *actor.PID          // receives RegistrationEvents; nil until needed
	// inflight counts Register calls under way, which Close waits for so
	// that it deregisters them too.
	inflight sync.WaitGroup
}

var _ backends.ServiceDiscovery = (*DiscoveryClient)(nil)

// closeTimeout bounds the deregistrations of Close.
const closeTimeout = 5 * time.Second

// newDiscoveryClient returns a facade for the discovery actor at pid. Of
// opts only OnRegistration is used: the namespace and retry settings are
// the actor's.
func newDiscoveryClient(root *actor.RootContext, pid *actor.PID, opts backends.DiscoveryOptions) *DiscoveryClient {
	life, stop := context.WithCancel(context.Background())
	return &DiscoveryClient{root: root, pid: pid, opts: opts, life: life, stop: stop, regs: map[string]struct{}{}}
}

func (d *DiscoveryClient) errClosed(op string) error {
	return fmt.Errorf("discovery: %s: %w", op, backends.ErrClosed)
}

// Register implements backends.ServiceDiscovery.
func (d *DiscoveryClient) Register(ctx context.Context, svc backends.ServiceInfo, ttl time.Duration) error {
	const op = "register"
	if err := svc.Validate(); err != nil {
		return fmt.Errorf("discovery: %s: %w", op, err)
	}
	if svc.Weight > math.MaxInt32 {
		return fmt.Errorf("discovery: %s: %w", op, backends.Invalid("service weight", svc.Weight, "larger than 2147483647"))
	}
	if err := backends.ValidateTTL("ttl", ttl); err != nil {
		return fmt.Errorf("discovery: %s: %w", op, err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return d.errClosed(op)
	}
	sub, err := d.registrationSubscriber()
	if err != nil {
		d.mu.Unlock()
		return err
	}
	// Recorded before asking, so that Close also covers a registration
	// whose answer was lost to ctx.
	_, had := d.regs[svc.ID]
	d.regs[svc.ID] = struct{}{}
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()

	req := &discoveryv1.RegisterRequest{Service: protoconv.ServiceInfoToProto(svc), Subscriber: actors.SubscriberOf(sub)}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := actors.Request[*discoveryv1.RegisterResponse](ctx, d.root, d.pid, req)
	if err != nil && resp != nil && !had {
		// The actor refused it: nothing to release later.
		d.mu.Lock()
		delete(d.regs, svc.ID)
		d.mu.Unlock()
	}
	return err
}

// registrationSubscriber returns the actor that hands RegistrationEvents
// to opts.OnRegistration, spawning it on first use; nil without a hook.
// d.mu is held.
func (d *DiscoveryClient) registrationSubscriber() (*actor.PID, error) {
	if d.opts.OnRegistration == nil || d.regSub != nil {
		return d.regSub, nil
	}
	hook := d.opts.OnRegistration
	props := actor.PropsFromProducer(func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			if ev, ok := c.Message().(*discoveryv1.RegistrationEvent); ok {
				hook(protoconv.RegistrationEventFromProto(ev))
			}
		})
	})
	pid, err := d.root.SpawnNamed(props, "baton-discovery-registrations-"+newSubscriptionID())
	if err != nil {
		return nil, backends.Unavailable("discovery: register", err)
	}
	d.regSub = pid
	return pid, nil
}

// Deregister implements backends.ServiceDiscovery.
func (d *DiscoveryClient) Deregister(ctx context.Context, serviceID string) error {
	const op = "deregister"
	if err := backends.ValidateName("service id", serviceID); err != nil {
		return fmt.Errorf("discovery: %s: %w", op, err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return d.errClosed(op)
	}
	_, ok := d.regs[serviceID]
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("discovery: %s %q: not registered through this client: %w", op, serviceID, backends.ErrNotFound)
	}
	_, err := actors.Request[*discoveryv1.DeregisterResponse](ctx, d.root, d.pid, &discoveryv1.DeregisterRequest{ServiceId: serviceID})
	if err == nil || errors.Is(err, backends.ErrNotFound) {
		d.mu.Lock()
		delete(d.regs, serviceID)
		d.mu.Unlock()
	}
	return err
}

// Discover implements backends.ServiceDiscovery.
func (d *DiscoveryClient) Discover(ctx context.Context, serviceName string) ([]backends.ServiceInfo, error) {
	if err := d.checkName("discover", serviceName); err != nil {
		return nil, err
	}
	resp, err := actors.Request[*discoveryv1.DiscoverResponse](ctx, d.root, d.pid, &discoveryv1.DiscoverRequest{ServiceName: serviceName})
	if err != nil {
		return nil, err
	}
	out := make([]backends.ServiceInfo, 0, len(resp.GetInstances()))
	for _, s := range resp.GetInstances() {
		out = append(out, protoconv.ServiceInfoFromProto(s))
	}
	return out, nil
}

func (d *DiscoveryClient) checkName(op, name string) error {
	if err := backends.ValidateName("service name", name); err != nil {
		return fmt.Errorf("discovery: %s: %w", op, err)
	}
	if d.life.Err() != nil {
		return d.errClosed(op)
	}
	return nil
}

// HealthCheck implements backends.ServiceDiscovery.
func (d *DiscoveryClient) HealthCheck(ctx context.Context) error {
	if d.life.Err() != nil {
		return d.errClosed("health check")
	}
	_, err := actors.Request[*discoveryv1.HealthCheckResponse](ctx, d.root, d.pid, &discoveryv1.HealthCheckRequest{})
	return err
}

// serviceWatchBuffer is the capacity of a watch channel.
const serviceWatchBuffer = 64

// Watch implements backends.ServiceDiscovery: a snapshot, then Added,
// Updated and Removed events, until ctx ends or the client is closed (the
// channel then closes). When the actor sends a later snapshot (after this
// watch fell behind, or after the actor restarted) the watch turns it into
// the Added/Updated/Removed difference to what it had delivered.
func (d *DiscoveryClient) Watch(ctx context.Context, serviceName string) (<-chan backends.ServiceEvent, error) {
	if err := d.checkName("watch", serviceName); err != nil {
		return nil, err
	}
	w := &serviceWatch{d: d, service: serviceName, view: map[string]backends.ServiceInfo{},
		out: make(chan backends.ServiceEvent, serviceWatchBuffer)}
	if err := openSubscription(ctx, d.life, d.root, d.pid, "discovery", w); err != nil {
		return nil, err
	}
	return w.out, nil
}

// Close deregisters what was registered through this client (best-effort,
// bounded), ends its watches and makes later calls return ErrClosed. It
// does not stop the actor. Idempotent.
//
// A registration that could not be deregistered (the backend is down) is
// reported in the returned error, which then matches ErrUnavailable; it
// expires with its TTL on the server. Everything else is closed anyway.
func (d *DiscoveryClient) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.stop()
	d.inflight.Wait() // bounded by the callers' contexts
	d.mu.Lock()
	ids := slices.Sorted(maps.Keys(d.regs))
	d.regs = map[string]struct{}{}
	regSub := d.regSub
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var left []string
	var cause error
	for _, id := range ids {
		_, err := actors.Request[*discoveryv1.DeregisterResponse](ctx, d.root, d.pid, &discoveryv1.DeregisterRequest{ServiceId: id})
		if err != nil && !errors.Is(err, backends.ErrNotFound) && !errors.Is(err, backends.ErrClosed) {
			left, cause = append(left, id), err
		}
	}
	if regSub != nil {
		d.root.Stop(regSub)
	}
	if len(left) > 0 {
		return backends.Unavailable(fmt.Sprintf("discovery: close: %q not deregistered, expiring with their TTL", left), cause)
	}
	return nil
}

// serviceWatch turns a discovery actor subscription into
// backends.ServiceEvents. Its state is owned by the subscriber actor.
type serviceWatch struct {
	d       *DiscoveryClient
	service string
	out     chan backends.ServiceEvent
	view    map[string]backends.ServiceInfo
	snapped bool // the first snapshot was delivered
}

func (w *serviceWatch) subscribe(ctx context.Context, id string, sub *subscriptionv1.Subscriber, _ bool) error {
	_, err := actors.Request[*discoveryv1.WatchResponse](ctx, w.d.root, w.d.pid,
		&discoveryv1.WatchRequest{ServiceName: w.service, SubscriptionId: id, Subscriber: sub})
	return err
}

func (w *serviceWatch) close() { close(w.out) }

func (w *serviceWatch) handle(ctx context.Context, msg any) bool {
	switch m := msg.(type) {
	case *discoveryv1.ServiceEvent:
		ev := protoconv.ServiceEventFromProto(m)
		switch ev.Type {
		case backends.ServiceSnapshot:
			if w.snapped {
				return w.diff(ctx, ev.Instances, ev.Revision)
			}
			w.snapped = true
			w.view = backends.ApplyServiceEvent(w.view, ev)
		case backends.ServiceAdded, backends.ServiceUpdated, backends.ServiceRemoved:
			w.view = backends.ApplyServiceEvent(w.view, ev)
		default:
			return true
		}
		return w.emit(ctx, ev)
	case *subscriptionv1.Resync:
		// Actors send a fresh snapshot instead; a bare Resync is handled
		// by reading the instances again.
		for attempt := 1; ; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			list, err := w.d.Discover(rctx, w.service)
			cancel()
			if err == nil {
				return w.diff(ctx, list, 0)
			}
			t := time.NewTimer(components.DefaultBackoff().Delay(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
	}
	return true
}

// diff delivers the difference between the view and list as events.
func (w *serviceWatch) diff(ctx context.Context, list []backends.ServiceInfo, rev uint64) bool {
	now := make(map[string]backends.ServiceInfo, len(list))
	for _, s := range list {
		now[s.ID] = s
	}
	for _, s := range list { // sorted by id
		old, had := w.view[s.ID]
		var ev backends.ServiceEvent
		switch {
		case !had:
			ev = backends.ServiceEvent{Type: backends.ServiceAdded, Service: s, Revision: rev}
		case !sameService(old, s):
			ev = backends.ServiceEvent{Type: backends.ServiceUpdated, Service: s, Revision: rev}
		default:
			continue
		}
		w.view[s.ID] = s
		if !w.emit(ctx, ev) {
			return false
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.view)) {
		if _, ok := now[id]; ok {
			continue
		}
		old := w.view[id]
		delete(w.view, id)
		if !w.emit(ctx, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old, Revision: rev}) {
			return false
		}
	}
	return true
}

func sameService(a, b backends.ServiceInfo) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Address == b.Address && a.Version == b.Version &&
		a.Weight == b.Weight && maps.Equal(a.Metadata, b.Metadata) && slices.Equal(a.Tags, b.Tags)
}

func (w *serviceWatch) emit(ctx context.Context, ev backends.ServiceEvent) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
