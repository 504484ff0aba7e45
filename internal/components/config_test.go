package components_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/internal/components"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// newConfigCenter opens a config center on srv's connector, closed with
// the test.
func newConfigCenter(t *testing.T, srv *server, opts backends.ConfigOptions) backends.ConfigCenter {
	t.Helper()
	if opts.Namespace.Env == "" {
		opts.Namespace = testNamespace(t)
	}
	var (
		cc  backends.ConfigCenter
		err error
	)
	switch c := srv.conn.(type) {
	case *redis.Connector:
		cc, err = redis.NewConfigCenter(c, opts)
	case *etcd.Connector:
		cc, err = etcd.NewConfigCenter(c, opts)
	default:
		t.Fatalf("unknown connector %T", srv.conn)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// watchCounter follows a config or discovery actor's OnWatchCount hook.
type watchCounter struct {
	now, peak atomic.Int64
}

func (w *watchCounter) hook(n int) {
	w.now.Store(int64(n))
	if int64(n) > w.peak.Load() {
		w.peak.Store(int64(n))
	}
}

// spawnConfigActor spawns a config actor serving cc; it is stopped with the
// test, before the actor system shuts down.
func spawnConfigActor(t *testing.T, sys *actor.ActorSystem, cfg components.ConfigActorConfig) *actor.PID {
	t.Helper()
	pid, err := sys.Root.SpawnNamed(components.NewConfigActorProps(cfg), "config")
	require.NoError(t, err)
	t.Cleanup(func() { _ = stopPID(sys, pid) })
	return pid
}

func watchStats(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) *components.WatchStats {
	t.Helper()
	st, err := components.AskWatchStats(ctxTimeout(t, 10*time.Second), sys.Root, pid)
	require.NoError(t, err)
	return st
}

// configRecorder records what test subscriber actors receive.
type configRecorder struct {
	mu      sync.Mutex
	events  map[string][]*configv1.Event // subscription id → events
	resyncs map[string][]uint64          // subscription id → seqs of Resync
	arrived map[string][]time.Time       // item value → arrival times
	changed chan struct{}
}

func newConfigRecorder() *configRecorder {
	return &configRecorder{events: map[string][]*configv1.Event{}, resyncs: map[string][]uint64{},
		arrived: map[string][]time.Time{}, changed: make(chan struct{}, 1)}
}

func (r *configRecorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// subscriber returns the props of a subscriber that records and acks;
// with block set, it blocks in Receive on its first event until block is
// closed.
func (r *configRecorder) subscriber(target *actor.PID, block <-chan struct{}) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *configv1.Event:
			now := time.Now()
			if block != nil {
				<-block
			}
			r.mu.Lock()
			r.events[m.GetSubscriptionId()] = append(r.events[m.GetSubscriptionId()], m)
			r.arrived[m.GetItem().GetValue()] = append(r.arrived[m.GetItem().GetValue()], now)
			r.mu.Unlock()
			r.notify()
			ctx.Send(target, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		case *subscriptionv1.Resync:
			r.mu.Lock()
			r.resyncs[m.GetSubscriptionId()] = append(r.resyncs[m.GetSubscriptionId()], m.GetSeq())
			r.mu.Unlock()
			r.notify()
			ctx.Send(target, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		}
	})
}

// waitFor waits until cond holds (checked under the lock after every
// recorded message), bounded by d.
func (r *configRecorder) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

func (r *configRecorder) arrivals(value string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrived[value])
}

// subscribe spawns a recording subscriber named id and subscribes it.
func (r *configRecorder) subscribe(t *testing.T, sys *actor.ActorSystem, cfgPID *actor.PID, id string, req *configv1.WatchRequest, block <-chan struct{}) *actor.PID {
	t.Helper()
	pid, err := sys.Root.SpawnNamed(r.subscriber(cfgPID, block), id)
	require.NoError(t, err)
	req.SubscriptionId, req.Subscriber = id, actors.SubscriberOf(pid)
	_, err = actors.Request[*configv1.WatchResponse](ctxTimeout(t, 10*time.Second), sys.Root, cfgPID, req)
	require.NoError(t, err)
	return pid
}

func setConfig(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, key, value string) *configv1.Item {
	t.Helper()
	resp, err := actors.Request[*configv1.SetResponse](ctxTimeout(t, 10*time.Second), sys.Root, pid,
		&configv1.SetRequest{Key: key, Value: value})
	require.NoError(t, err)
	return resp.GetItem()
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return at(0.50), at(0.99)
}

// measureSetToEvent sets key rounds times through the actor and returns
// the latency from the start of each Set to each subscriber's receipt.
func measureSetToEvent(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, rec *configRecorder, key, tag string, rounds, subscribers int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := range rounds {
		value := fmt.Sprintf("%s-%d", tag, i)
		start := time.Now()
		setConfig(t, sys, pid, key, value)
		rec.waitFor(t, 30*time.Second, "every subscriber got "+value, func() bool {
			return len(rec.arrived[value]) == subscribers
		})
		for _, at := range rec.arrivals(value) {
			lat = append(lat, at.Sub(start))
		}
	}
	return lat
}

// TestConfigActorSharedWatch: 1,000 subscribers of one prefix are served
// by exactly one backend watch; every subscriber gets every event; stopped
// subscribers are removed by death watch, and the backend watch stops with
// the last one.
func TestConfigActorSharedWatch(t *testing.T) {
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		t.Run(backend, func(t *testing.T) {
			srv := startServer(t, backend)
			sys := newSystem(t)
			var count watchCounter
			pid := spawnConfigActor(t, sys, components.ConfigActorConfig{
				Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: backend, OnWatchCount: count.hook,
			})
			rec := newConfigRecorder()
			const n = 1000

			subs := []*actor.PID{rec.subscribe(t, sys, pid, "sub-0", &configv1.WatchRequest{Key: "app/", Prefix: true}, nil)}
			lat1 := measureSetToEvent(t, sys, pid, rec, "app/latency", "one", 200, 1)

			for i := 1; i < n; i++ {
				subs = append(subs, rec.subscribe(t, sys, pid, fmt.Sprintf("sub-%d", i), &configv1.WatchRequest{Key: "app/", Prefix: true}, nil))
			}
			st := watchStats(t, sys, pid)
			assert.Equal(t, 1, st.BackendWatches, "one backend watch for %d subscribers", n)
			assert.Equal(t, 1, st.Topics)
			assert.Equal(t, n, st.Subscriptions)
			assert.EqualValues(t, 1, count.peak.Load(), "the backend watch count never exceeded one")

			item := setConfig(t, sys, pid, "app/feature", "on")
			rec.waitFor(t, 30*time.Second, "the event at every subscriber", func() bool { return len(rec.arrived["on"]) == n })
			rec.mu.Lock()
			for i := range n {
				evs := rec.events[fmt.Sprintf("sub-%d", i)]
				require.NotEmpty(t, evs, "sub-%d", i)
				last := evs[len(evs)-1]
				assert.Equal(t, configv1.EventType_EVENT_TYPE_PUT, last.GetType())
				assert.Equal(t, "app/feature", last.GetItem().GetKey())
				assert.Equal(t, "on", last.GetItem().GetValue())
				assert.Equal(t, uint64(len(evs)), last.GetSeq(), "sub-%d: seq numbers its events", i)
				assert.Equal(t, item.GetKey(), last.GetItem().GetKey())
			}
			rec.mu.Unlock()

			latN := measureSetToEvent(t, sys, pid, rec, "app/latency", "many", 20, n)
			p50, p99 := percentiles(lat1)
			t.Logf("%s: set→event through the actor, 1 subscriber: p50 %v p99 %v (%d samples)", backend, p50, p99, len(lat1))
			p50, p99 = percentiles(latN)
			t.Logf("%s: set→event through the actor, %d subscribers: p50 %v p99 %v (%d samples)", backend, n, p50, p99, len(latN))

			// Explicit unsubscribe of a few, death watch for the rest.
			for i := range 10 {
				_, err := actors.Request[*subscriptionv1.UnsubscribeResponse](ctxTimeout(t, 10*time.Second), sys.Root, pid,
					&subscriptionv1.UnsubscribeRequest{SubscriptionId: fmt.Sprintf("sub-%d", i)})
				require.NoError(t, err)
			}
			assert.Equal(t, n-10, watchStats(t, sys, pid).Subscriptions)
			for _, p := range subs[:n/2] {
				sys.Root.Stop(p)
			}
			require.Eventually(t, func() bool { return watchStats(t, sys, pid).Subscriptions == n/2 }, 30*time.Second, 10*time.Millisecond,
				"stopped subscribers are removed")
			assert.Equal(t, 1, watchStats(t, sys, pid).BackendWatches, "the watch runs while subscribers remain")
			for _, p := range subs[n/2:] {
				sys.Root.Stop(p)
			}
			require.Eventually(t, func() bool {
				st := watchStats(t, sys, pid)
				return st.Subscriptions == 0 && st.BackendWatches == 0
			}, 30*time.Second, 10*time.Millisecond, "the backend watch stops with the last subscriber")
			assert.EqualValues(t, 0, count.now.Load(), "OnWatchCount reported zero")
		})
	}
}

// TestConfigActorSlowSubscriber: a subscriber blocked in Receive does not
// delay the others; once it catches up it gets a Resync, and events flow
// to it again.
func TestConfigActorSlowSubscriber(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{
		Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend, Window: 4,
	})
	rec := newConfigRecorder()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	rec.subscribe(t, sys, pid, "slow", &configv1.WatchRequest{Key: "k"}, release)
	for i := range 10 {
		rec.subscribe(t, sys, pid, fmt.Sprintf("fast-%d", i), &configv1.WatchRequest{Key: "k"}, nil)
	}
	const writes = 20
	for i := range writes {
		value := fmt.Sprint("v", i)
		start := time.Now()
		setConfig(t, sys, pid, "k", value)
		rec.waitFor(t, time.Second, "fast subscribers got "+value, func() bool { return len(rec.arrived[value]) == 10 })
		assert.Less(t, time.Since(start), time.Second)
	}
	rec.mu.Lock()
	assert.Empty(t, rec.events["slow"], "the slow subscriber is still blocked")
	rec.mu.Unlock()

	unblock()
	rec.waitFor(t, 10*time.Second, "a resync for the slow subscriber", func() bool { return len(rec.resyncs["slow"]) == 1 })
	rec.mu.Lock()
	got := rec.events["slow"]
	assert.Len(t, got, 4, "it received the window's worth of events, then nothing until the resync")
	for i, ev := range got {
		assert.Equal(t, uint64(i+1), ev.GetSeq())
		assert.Equal(t, fmt.Sprint("v", i), ev.GetItem().GetValue())
	}
	assert.Equal(t, []uint64{5}, rec.resyncs["slow"], "the resync takes the next seq")
	rec.mu.Unlock()

	setConfig(t, sys, pid, "k", "after")
	rec.waitFor(t, 10*time.Second, "events flow again", func() bool { return len(rec.arrived["after"]) == 11 })
	rec.mu.Lock()
	evs := rec.events["slow"]
	assert.Equal(t, uint64(6), evs[len(evs)-1].GetSeq())
	rec.mu.Unlock()
}

// TestConfigActorFromVersionWatch: a subscription resuming from a version
// gets a backend watch of its own that replays what it missed; the shared
// topic is not disturbed.
func TestConfigActorFromVersionWatch(t *testing.T) {
	srv := startServer(t, backends.BackendEtcd)
	sys := newSystem(t)
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend})
	rec := newConfigRecorder()

	v0 := setConfig(t, sys, pid, "fv/a", "a1")
	resp, err := actors.Request[*configv1.GetResponse](ctxTimeout(t, 10*time.Second), sys.Root, pid, &configv1.GetRequest{Key: "fv/a"})
	require.NoError(t, err)
	from := resp.GetItem().GetVersion()
	require.NotZero(t, from)
	assert.Equal(t, "a1", v0.GetValue())
	setConfig(t, sys, pid, "fv/b", "b1")
	setConfig(t, sys, pid, "fv/a", "a2")

	rec.subscribe(t, sys, pid, "live", &configv1.WatchRequest{Key: "fv/", Prefix: true}, nil)
	rec.subscribe(t, sys, pid, "resume", &configv1.WatchRequest{Key: "fv/", Prefix: true, FromVersion: from}, nil)
	st := watchStats(t, sys, pid)
	assert.Equal(t, 2, st.BackendWatches, "the resuming subscription has its own watch")

	setConfig(t, sys, pid, "fv/c", "c1")
	rec.waitFor(t, 10*time.Second, "both see c1", func() bool { return len(rec.arrived["c1"]) == 2 })
	rec.mu.Lock()
	values := func(id string) []string {
		var out []string
		for _, ev := range rec.events[id] {
			out = append(out, ev.GetItem().GetValue())
		}
		return out
	}
	assert.Equal(t, []string{"b1", "a2", "c1"}, values("resume"), "missed changes replayed, then live ones")
	assert.Equal(t, []string{"c1"}, values("live"))
	rec.mu.Unlock()
}

// TestConfigActorRejectsBadInput: unknown and malformed messages get an
// invalid-argument status and the actor keeps serving.
func TestConfigActorRejectsBadInput(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend})
	ctx := ctxTimeout(t, 10*time.Second)

	_, err := actors.Request[*configv1.GetResponse](ctx, sys.Root, pid, &discoveryv1.DiscoverRequest{ServiceName: "x"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "unknown message")
	// Request takes only protobuf messages; another value sent directly
	// gets an invalid-argument status too.
	res, err := sys.Root.RequestFuture(pid, "not even a proto", 5*time.Second).Result()
	require.NoError(t, err)
	st, ok := res.(*statusv1.Status)
	require.True(t, ok, "%T", res)
	assert.ErrorIs(t, st.Err(), backends.ErrInvalidArgument, "unknown message")
	_, err = actors.Request[*configv1.GetResponse](ctx, sys.Root, pid, &configv1.GetRequest{Key: ""})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "empty key")
	_, err = actors.Request[*configv1.SetResponse](ctx, sys.Root, pid, &configv1.SetRequest{Name: "other", Key: "k", Value: "v"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "a namespace the actor does not serve")
	_, err = actors.Request[*configv1.WatchResponse](ctx, sys.Root, pid, &configv1.WatchRequest{Key: "k"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "watch without subscription id")
	_, err = actors.Request[*configv1.WatchResponse](ctx, sys.Root, pid, &configv1.WatchRequest{Key: "", SubscriptionId: "s"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "watch of an empty key")
	_, err = actors.Request[*configv1.ResolveResponse](ctx, sys.Root, pid, &configv1.ResolveRequest{Component: "a/b", Key: "k"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "bad component")
	assert.Zero(t, watchStats(t, sys, pid).Subscriptions, "nothing was subscribed")

	setConfig(t, sys, pid, "k", "v")
	resp, err := actors.Request[*configv1.GetResponse](ctx, sys.Root, pid, &configv1.GetRequest{Key: "k"})
	require.NoError(t, err, "the actor still serves")
	assert.Equal(t, "v", resp.GetItem().GetValue())
}

// TestConfigActorNamespaces: named namespaces are opened on demand.
func TestConfigActorNamespaces(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	var opened atomic.Int32
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{
		Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend,
		Open: func(name string) (backends.ConfigCenter, error) {
			opened.Add(1)
			return redis.NewConfigCenter(srv.conn.(*redis.Connector), backends.ConfigOptions{Namespace: testNamespace(t), Name: name})
		},
	})
	ctx := ctxTimeout(t, 10*time.Second)
	def := nodeaccess.NewConfigClient(sys.Root, pid, "").(*runtime.ConfigClient)
	other := nodeaccess.NewConfigClient(sys.Root, pid, "other").(*runtime.ConfigClient)
	require.NoError(t, def.Set(ctx, "k", "default"))
	require.NoError(t, other.Set(ctx, "k", "other"))
	v, err := def.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "default", v)
	v, err = other.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "other", v)
	v, err = nodeaccess.NewConfigClient(sys.Root, pid, "default").(*runtime.ConfigClient).Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "default", v, "the default namespace by its name")
	assert.EqualValues(t, 1, opened.Load())
	_, err = nodeaccess.NewConfigClient(sys.Root, pid, "a/b").(*runtime.ConfigClient).Get(ctx, "k")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// TestConfigClient exercises the facade: every method, typed errors, and a
// watch that closes with its context.
func TestConfigClient(t *testing.T) {
	srv := startServer(t, backends.BackendEtcd)
	sys := newSystem(t)
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend})
	cc := nodeaccess.NewConfigClient(sys.Root, pid, "").(*runtime.ConfigClient)
	t.Cleanup(func() { _ = cc.Close() })
	ctx := ctxTimeout(t, 30*time.Second)

	_, err := cc.Get(ctx, "missing")
	assert.ErrorIs(t, err, backends.ErrNotFound)
	var ia *backends.InvalidArgumentError
	assert.ErrorAs(t, cc.Set(ctx, "", "v"), &ia, "validated locally, typed")

	wctx, cancel := context.WithCancel(ctx)
	ch, err := cc.WatchWith(wctx, "svc/", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)

	require.NoError(t, cc.Set(ctx, "svc/a", "1"))
	it, err := cc.GetItem(ctx, "svc/a")
	require.NoError(t, err)
	_, err = cc.CompareAndSet(ctx, "svc/a", "x", it.Version+100)
	assert.ErrorIs(t, err, backends.ErrConflict)
	it2, err := cc.CompareAndSet(ctx, "svc/a", "2", it.Version)
	require.NoError(t, err)
	assert.Greater(t, it2.Version, it.Version)
	require.NoError(t, cc.Delete(ctx, "svc/a"))
	require.NoError(t, cc.Set(ctx, "svc/b", "3"))

	var got []string
	for len(got) < 4 {
		select {
		case ev := <-ch:
			got = append(got, fmt.Sprintf("%s %s=%s", ev.Type, ev.Item.Key, ev.Item.Value))
		case <-ctx.Done():
			t.Fatalf("events so far: %v", got)
		}
	}
	assert.Equal(t, []string{"put svc/a=1", "put svc/a=2", "delete svc/a=", "put svc/b=3"}, got)

	m, err := cc.List(ctx, "svc/")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"svc/b": "3"}, m)
	hist, err := cc.History(ctx, "svc/b", 0)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	require.NoError(t, cc.Set(ctx, "svc/b", "4"))
	rb, err := cc.Rollback(ctx, "svc/b", hist[0].Version)
	require.NoError(t, err)
	assert.Equal(t, "3", rb.Value)

	require.NoError(t, cc.Set(ctx, backends.LayerKey(backends.LayerSystem, "", "", "ttl"), "1s"))
	require.NoError(t, cc.Set(ctx, backends.LayerKey(backends.LayerComponent, "cache", "", "ttl"), "2s"))
	ri, layer, err := cc.Resolve(ctx, "cache", "sessions", "ttl")
	require.NoError(t, err)
	assert.Equal(t, "2s", ri.Value)
	assert.Equal(t, backends.LayerComponent, layer)
	_, _, err = cc.Resolve(ctx, "cache", "sessions", "nope")
	assert.ErrorIs(t, err, backends.ErrNotFound)

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
	require.Eventually(t, func() bool { return watchStats(t, sys, pid).BackendWatches == 0 }, 10*time.Second, 10*time.Millisecond,
		"the facade unsubscribed and the backend watch stopped")

	require.NoError(t, cc.Close())
	assert.ErrorIs(t, cc.Set(ctx, "k", "v"), backends.ErrClosed)
}

// TestConfigClientResync: a facade watch whose reader stalls overflows the
// actor's window; it then delivers ConfigResync and exactly the difference,
// so the reader's view matches the server.
func TestConfigClientResync(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{Center: newConfigCenter(t, srv, backends.ConfigOptions{}), Backend: srv.backend, Window: 4})
	cc := nodeaccess.NewConfigClient(sys.Root, pid, "").(*runtime.ConfigClient)
	ctx := ctxTimeout(t, 60*time.Second)

	require.NoError(t, cc.Set(ctx, "r/old", "x"))  // held from the start
	require.NoError(t, cc.Set(ctx, "r/keep", "k")) // never changes
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := cc.WatchWith(wctx, "r/", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)

	// Far more writes than the channel buffer plus the window, unread.
	for i := range 200 {
		require.NoError(t, cc.Set(ctx, fmt.Sprintf("r/k%d", i%10), fmt.Sprint(i)))
	}
	require.NoError(t, cc.Delete(ctx, "r/old"))
	require.NoError(t, cc.Set(ctx, "r/z", "marker"))

	truth, err := cc.List(ctx, "r/")
	require.NoError(t, err)
	view := map[string]string{"r/old": "x", "r/keep": "k"}
	resyncs := 0
	deadline := time.After(30 * time.Second)
	for resyncs == 0 || !maps.Equal(view, truth) {
		select {
		case ev, ok := <-ch:
			require.True(t, ok)
			switch ev.Type {
			case backends.ConfigPut:
				view[ev.Item.Key] = ev.Item.Value
			case backends.ConfigDelete:
				delete(view, ev.Item.Key)
			case backends.ConfigResync:
				resyncs++
			}
		case <-deadline:
			t.Fatalf("the reader's view %v never matched the server's %v (resyncs: %d)", view, truth, resyncs)
		}
	}
	// Nothing stale follows: a new write arrives, and anything before it is
	// a further resync (the burst may have overflowed the window twice)
	// whose difference is empty because the view already matches.
	require.NoError(t, cc.Set(ctx, "r/after", "1"))
	for {
		select {
		case ev := <-ch:
			if ev.Item.Key == "r/after" {
				assert.Equal(t, backends.ConfigPut, ev.Type)
				assert.Positive(t, resyncs, "the overflow was reported as a resync")
				return
			}
			if ev.Type != backends.ConfigResync {
				assert.Equal(t, truth[ev.Item.Key], ev.Item.Value, "a stale event after the view converged: %+v", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event for r/after")
		}
	}
}

// panickyCenter is a real config center whose GetItem of the key "panic"
// panics, to make the actor fail and be restarted by its supervisor.
type panickyCenter struct{ backends.ConfigCenter }

func (p panickyCenter) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	if key == "panic" {
		panic("config test: asked to fail")
	}
	return p.ConfigCenter.GetItem(ctx, key)
}

// TestConfigActorRestartResumesWatches: when the actor restarts, its
// subscribers are told (Ended, unavailable) and a facade watch subscribes
// again and goes on without losing or repeating a change.
func TestConfigActorRestartResumesWatches(t *testing.T) {
	srv := startServer(t, backends.BackendRedis)
	sys := newSystem(t)
	center := newConfigCenter(t, srv, backends.ConfigOptions{})
	pid := spawnConfigActor(t, sys, components.ConfigActorConfig{Center: panickyCenter{center}, Backend: srv.backend})
	cc := nodeaccess.NewConfigClient(sys.Root, pid, "").(*runtime.ConfigClient)
	ctx := ctxTimeout(t, 30*time.Second)

	ch, err := cc.WatchWith(ctx, "p/", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)
	next := func() backends.ConfigEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "the watch channel closed")
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return backends.ConfigEvent{}
	}
	require.NoError(t, cc.Set(ctx, "p/a", "1"))
	assert.Equal(t, "1", next().Item.Value)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = cc.Get(short, "panic")
	cancel()
	require.Error(t, err, "the request that crashed the actor gets no answer")

	// Written while the actor restarts and the facade resubscribes.
	require.NoError(t, center.Set(ctx, "p/b", "2"))
	require.NoError(t, cc.Set(ctx, "p/c", "3"))
	assert.Equal(t, "2", next().Item.Value, "the change made during the restart is replayed")
	assert.Equal(t, "3", next().Item.Value)
	require.NoError(t, cc.Set(ctx, "p/d", "4"))
	assert.Equal(t, "4", next().Item.Value, "no change is repeated")
}
