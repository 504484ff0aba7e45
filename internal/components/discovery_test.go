package components_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/internal/components"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// discoveryFactory creates discoveries on srv's connector.
func discoveryFactory(srv *server) func(opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
	return func(opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
		switch c := srv.conn.(type) {
		case *redis.Connector:
			return redis.NewDiscovery(c, opts)
		case *etcd.Connector:
			return etcd.NewDiscovery(c, opts)
		}
		return nil, fmt.Errorf("unknown connector %T", srv.conn)
	}
}

func spawnDiscoveryActor(t *testing.T, sys *actor.ActorSystem, srv *server, cfg components.DiscoveryActorConfig) *actor.PID {
	t.Helper()
	cfg.NewDiscovery = discoveryFactory(srv)
	if cfg.Options.Namespace.Env == "" {
		cfg.Options.Namespace = testNamespace(t)
	}
	cfg.Backend = srv.backend
	pid, err := sys.Root.SpawnNamed(components.NewDiscoveryActorProps(cfg), "discovery")
	require.NoError(t, err)
	t.Cleanup(func() { _ = stopPID(sys, pid) })
	return pid
}

// serviceRecorder records what test subscriber actors receive.
type serviceRecorder struct {
	mu      sync.Mutex
	events  map[string][]*discoveryv1.ServiceEvent
	changed chan struct{}
}

func newServiceRecorder() *serviceRecorder {
	return &serviceRecorder{events: map[string][]*discoveryv1.ServiceEvent{}, changed: make(chan struct{}, 1)}
}

func (r *serviceRecorder) subscriber(target *actor.PID, block <-chan struct{}) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*discoveryv1.ServiceEvent); ok {
			if block != nil {
				<-block
			}
			r.mu.Lock()
			r.events[m.GetSubscriptionId()] = append(r.events[m.GetSubscriptionId()], m)
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
			ctx.Send(target, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		}
	})
}

func (r *serviceRecorder) subscribe(t *testing.T, sys *actor.ActorSystem, target *actor.PID, id, service string, block <-chan struct{}) *actor.PID {
	t.Helper()
	pid, err := sys.Root.SpawnNamed(r.subscriber(target, block), id)
	require.NoError(t, err)
	_, err = actors.Request[*discoveryv1.WatchResponse](ctxTimeout(t, 10*time.Second), sys.Root, target,
		&discoveryv1.WatchRequest{ServiceName: service, SubscriptionId: id, Subscriber: actors.SubscriberOf(pid)})
	require.NoError(t, err)
	return pid
}

// waitEvents waits until subscription id has at least n events and
// returns them.
func (r *serviceRecorder) waitEvents(t *testing.T, id string, n int) []*discoveryv1.ServiceEvent {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		evs := slices.Clone(r.events[id])
		r.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("%s: %d events, want %d: %v", id, len(evs), n, evs)
		}
	}
}

func instanceIDs(list []*discoveryv1.ServiceInfo) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.GetId())
	}
	return out
}

func registerVia(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, id string, meta map[string]string) {
	t.Helper()
	_, err := actors.Request[*discoveryv1.RegisterResponse](ctxTimeout(t, 10*time.Second), sys.Root, pid, &discoveryv1.RegisterRequest{
		Service: &discoveryv1.ServiceInfo{Id: id, Name: "mail", Address: "127.0.0.1:25", Metadata: meta},
		Ttl:     durationpb.New(10 * time.Second),
	})
	require.NoError(t, err)
}

// TestDiscoveryActorWatch: one backend watch per service, a snapshot as
// every subscriber's first event (built from the actor's view for late
// subscribers), then added, updated and removed events.
func TestDiscoveryActorWatch(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			srv := startServer(t, backend)
			sys := newSystem(t)
			var count watchCounter
			pid := spawnDiscoveryActor(t, sys, srv, components.DiscoveryActorConfig{OnWatchCount: count.hook})
			rec := newServiceRecorder()

			registerVia(t, sys, pid, "mail-b", nil)
			registerVia(t, sys, pid, "mail-a", nil)
			first := rec.subscribe(t, sys, pid, "first", "mail", nil)
			evs := rec.waitEvents(t, "first", 1)
			assert.Equal(t, discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, evs[0].GetType())
			assert.Equal(t, []string{"mail-a", "mail-b"}, instanceIDs(evs[0].GetInstances()))

			registerVia(t, sys, pid, "mail-c", nil)
			registerVia(t, sys, pid, "mail-c", map[string]string{"state": "draining"})
			_, err := actors.Request[*discoveryv1.DeregisterResponse](ctxTimeout(t, 10*time.Second), sys.Root, pid,
				&discoveryv1.DeregisterRequest{ServiceId: "mail-a"})
			require.NoError(t, err)
			evs = rec.waitEvents(t, "first", 4)
			var types []discoveryv1.ServiceEventType
			for _, ev := range evs {
				types = append(types, ev.GetType())
			}
			assert.Equal(t, []discoveryv1.ServiceEventType{
				discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED,
				discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED, discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED,
			}, types)
			assert.Equal(t, "draining", evs[2].GetService().GetMetadata()["state"])
			assert.Equal(t, "mail-a", evs[3].GetService().GetId())

			// A late subscriber starts from the actor's view.
			late := rec.subscribe(t, sys, pid, "late", "mail", nil)
			evs = rec.waitEvents(t, "late", 1)
			assert.Equal(t, discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, evs[0].GetType())
			assert.Equal(t, []string{"mail-b", "mail-c"}, instanceIDs(evs[0].GetInstances()))
			assert.Equal(t, "draining", evs[0].GetInstances()[1].GetMetadata()["state"])
			assert.Equal(t, uint64(1), evs[0].GetSeq())

			st := watchStats(t, sys, pid)
			assert.Equal(t, 1, st.BackendWatches)
			assert.Equal(t, 2, st.Subscriptions)
			registerVia(t, sys, pid, "mail-d", nil)
			assert.Equal(t, "mail-d", rec.waitEvents(t, "late", 2)[1].GetService().GetId())
			assert.Equal(t, "mail-d", rec.waitEvents(t, "first", 5)[4].GetService().GetId())

			sys.Root.Stop(first)
			sys.Root.Stop(late)
			require.Eventually(t, func() bool { return watchStats(t, sys, pid).BackendWatches == 0 }, 15*time.Second, 10*time.Millisecond,
				"the backend watch stops with the last subscriber")
			assert.EqualValues(t, 1, count.peak.Load())
		})
	}
}

// TestDiscoveryActorSlowSubscriber: a subscriber that fell behind does not
// delay the others and is brought back with a fresh snapshot.
func TestDiscoveryActorSlowSubscriber(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnDiscoveryActor(t, sys, srv, components.DiscoveryActorConfig{Window: 4})
	rec := newServiceRecorder()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	rec.subscribe(t, sys, pid, "slow", "mail", release)
	rec.subscribe(t, sys, pid, "fast", "mail", nil)
	for i := range 10 {
		start := time.Now()
		registerVia(t, sys, pid, fmt.Sprintf("mail-%02d", i), nil)
		rec.waitEvents(t, "fast", i+2)
		assert.Less(t, time.Since(start), time.Second, "the fast subscriber is not held back")
	}
	unblock()
	evs := rec.waitEvents(t, "slow", 5)
	last := evs[4]
	assert.Equal(t, discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, last.GetType(), "a fresh snapshot after catching up")
	assert.Equal(t, uint64(5), last.GetSeq())
	assert.Len(t, last.GetInstances(), 10)
}

// TestDiscoveryActorRejectsBadInput: unknown and malformed messages get an
// invalid-argument status and the actor keeps serving.
func TestDiscoveryActorRejectsBadInput(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnDiscoveryActor(t, sys, srv, components.DiscoveryActorConfig{})
	ctx := ctxTimeout(t, 10*time.Second)

	_, err := actors.Request[*discoveryv1.DiscoverResponse](ctx, sys.Root, pid, &configv1.GetRequest{Key: "k"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "unknown message")
	_, err = actors.Request[*discoveryv1.RegisterResponse](ctx, sys.Root, pid, &discoveryv1.RegisterRequest{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "register without a service")
	_, err = actors.Request[*discoveryv1.WatchResponse](ctx, sys.Root, pid, &discoveryv1.WatchRequest{ServiceName: "a/b", SubscriptionId: "s"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "bad service name")
	_, err = actors.Request[*discoveryv1.DiscoverResponse](ctx, sys.Root, pid, &discoveryv1.DiscoverRequest{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "discover without a name")

	registerVia(t, sys, pid, "mail-1", nil)
	resp, err := actors.Request[*discoveryv1.DiscoverResponse](ctx, sys.Root, pid, &discoveryv1.DiscoverRequest{ServiceName: "mail"})
	require.NoError(t, err, "the actor still serves")
	assert.Equal(t, []string{"mail-1"}, instanceIDs(resp.GetInstances()))
	_, err = actors.Request[*discoveryv1.HealthCheckResponse](ctx, sys.Root, pid, &discoveryv1.HealthCheckRequest{})
	assert.NoError(t, err)
}

// TestDiscoveryClient exercises the facade: registration ownership, watch
// snapshot and changes, typed errors, Close.
func TestDiscoveryClient(t *testing.T) {
	srv := startServer(t, backends.BackendEtcd)
	sys := newSystem(t)
	pid := spawnDiscoveryActor(t, sys, srv, components.DiscoveryActorConfig{})
	d := nodeaccess.NewDiscoveryClient(sys.Root, pid, backends.DiscoveryOptions{}).(*runtime.DiscoveryClient)
	other := nodeaccess.NewDiscoveryClient(sys.Root, pid, backends.DiscoveryOptions{}).(*runtime.DiscoveryClient)
	t.Cleanup(func() { _ = d.Close(); _ = other.Close() })
	ctx := ctxTimeout(t, 30*time.Second)

	a := backends.ServiceInfo{ID: "api-a", Name: "api", Address: "127.0.0.1:80", Tags: []string{"v1"}}
	require.NoError(t, d.Register(ctx, a, 0))
	wctx, cancel := context.WithCancel(ctx)
	ch, err := other.Watch(wctx, "api")
	require.NoError(t, err)
	next := func() backends.ServiceEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "channel closed early")
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return backends.ServiceEvent{}
	}
	ev := next()
	assert.Equal(t, backends.ServiceSnapshot, ev.Type)
	assert.Equal(t, []backends.ServiceInfo{a}, ev.Instances)

	b := backends.ServiceInfo{ID: "api-b", Name: "api", Address: "127.0.0.1:81"}
	require.NoError(t, d.Register(ctx, b, 0))
	ev = next()
	assert.Equal(t, backends.ServiceAdded, ev.Type)
	assert.Equal(t, b, ev.Service)

	assert.ErrorIs(t, other.Deregister(ctx, "api-a"), backends.ErrNotFound, "not registered through that client")
	require.NoError(t, d.Deregister(ctx, "api-a"))
	ev = next()
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, "api-a", ev.Service.ID)

	list, err := other.Discover(ctx, "api")
	require.NoError(t, err)
	assert.Equal(t, []backends.ServiceInfo{b}, list)
	require.NoError(t, other.HealthCheck(ctx))

	var ia *backends.InvalidArgumentError
	assert.ErrorAs(t, d.Register(ctx, backends.ServiceInfo{ID: "x", Name: "a/b", Address: "h"}, 0), &ia)
	assert.ErrorIs(t, d.Register(ctx, b, -time.Second), backends.ErrInvalidArgument)
	_, err = d.Watch(ctx, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)

	cancel()
	require.Eventually(t, func() bool {
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return true
				}
			default:
				return false
			}
		}
	}, 10*time.Second, 10*time.Millisecond, "the watch channel closes when its context ends")

	require.NoError(t, d.Close())
	require.Eventually(t, func() bool {
		list, err := other.Discover(ctx, "api")
		return err == nil && len(list) == 0
	}, 10*time.Second, 20*time.Millisecond, "Close deregisters")
	assert.ErrorIs(t, d.Register(ctx, b, 0), backends.ErrClosed)
	assert.NoError(t, d.Close(), "idempotent")
}

// TestDiscoveryRegistrationEventsAfterRestart: when Redis restarts empty,
// the registration is lost and restored by the backend, and both reports
// reach the registering client through the actor.
func TestDiscoveryRegistrationEventsAfterRestart(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnDiscoveryActor(t, sys, srv, components.DiscoveryActorConfig{
		Options: backends.DiscoveryOptions{Namespace: testNamespace(t), RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	})
	var (
		mu     sync.Mutex
		states []backends.RegistrationEvent
	)
	d := nodeaccess.NewDiscoveryClient(sys.Root, pid, backends.DiscoveryOptions{OnRegistration: func(ev backends.RegistrationEvent) {
		mu.Lock()
		states = append(states, ev)
		mu.Unlock()
	}}).(*runtime.DiscoveryClient)
	t.Cleanup(func() { _ = d.Close() })
	ctx := ctxTimeout(t, 60*time.Second)
	svc := backends.ServiceInfo{ID: "heal-a", Name: "heal", Address: "127.0.0.1:1"}
	require.NoError(t, d.Register(ctx, svc, 2*time.Second))

	srv.stop()
	srv.start()

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		lost := slices.IndexFunc(states, func(ev backends.RegistrationEvent) bool { return ev.State == backends.RegistrationLost })
		restored := slices.IndexFunc(states, func(ev backends.RegistrationEvent) bool { return ev.State == backends.RegistrationRestored })
		return lost >= 0 && restored > lost
	}, 30*time.Second, 20*time.Millisecond, "lost then restored reached the client")
	mu.Lock()
	for _, ev := range states {
		assert.Equal(t, "heal-a", ev.ServiceID)
		assert.Equal(t, "heal", ev.ServiceName)
		if ev.State == backends.RegistrationLost {
			assert.Error(t, ev.Err, "a loss carries its cause")
		}
	}
	mu.Unlock()
	require.Eventually(t, func() bool {
		list, err := d.Discover(ctx, "heal")
		return err == nil && len(list) == 1
	}, 30*time.Second, 50*time.Millisecond, "the registration is back")
}
