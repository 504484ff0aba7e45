package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// discNew returns a Discovery closed at cleanup, with short retries.
func discNew(t *testing.T, conn *Connector, ns backends.Namespace, onReg func(backends.RegistrationEvent)) *registry {
	t.Helper()
	d, err := newRegistry(conn, backends.DiscoveryOptions{
		Namespace:      ns,
		OnRegistration: onReg,
		RetryMin:       20 * time.Millisecond,
		RetryMax:       200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func discSvc(name, id, addr string) backends.ServiceInfo {
	return backends.ServiceInfo{ID: id, Name: name, Address: addr, Metadata: map[string]string{"zone": "a"}, Tags: []string{"t1"}, Version: "1.0", Weight: 1}
}

// discNext waits for the next event on ch.
func discNext(t *testing.T, ch <-chan backends.ServiceEvent) backends.ServiceEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return backends.ServiceEvent{}
}

// discNoEvent checks that nothing arrives on ch for a while.
func discNoEvent(t *testing.T, ch <-chan backends.ServiceEvent, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %v %+v", ev.Type, ev.Service)
	case <-time.After(d):
	}
}

// discView applies watch events to a map, as a client of Watch would.
type discView struct {
	mu  sync.Mutex
	ids map[string]backends.ServiceInfo
}

func (v *discView) apply(ev backends.ServiceEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch ev.Type {
	case backends.ServiceSnapshot:
		v.ids = make(map[string]backends.ServiceInfo)
		for _, s := range ev.Instances {
			v.ids[s.ID] = s
		}
	case backends.ServiceAdded, backends.ServiceUpdated:
		v.ids[ev.Service.ID] = ev.Service
	case backends.ServiceRemoved:
		delete(v.ids, ev.Service.ID)
	}
}

func (v *discView) sorted() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.ids))
	for id := range v.ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// discFollow applies every event of ch to a view in the background until ch
// closes; the returned func waits for that.
func discFollow(ch <-chan backends.ServiceEvent, v *discView, seen func(backends.ServiceEvent)) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			v.apply(ev)
			if seen != nil {
				seen(ev)
			}
		}
	}()
	return func() { <-done }
}

func discIDs(list []backends.ServiceInfo) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func TestDiscoveryRegisterDiscover(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	d := discNew(t, conn, kitNS(t, "test"), nil)

	list, err := d.Discover(ctx, "orders")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.NotNil(t, list, "no instances is an empty slice")

	require.NoError(t, d.Register(ctx, discSvc("orders", "o2", "127.0.0.2:80"), time.Minute))
	require.NoError(t, d.Register(ctx, discSvc("orders", "o1", "127.0.0.1:80"), 0))
	require.NoError(t, d.Register(ctx, discSvc("billing", "b1", "127.0.1.1:80"), time.Minute))
	list, err = d.Discover(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, []string{"o1", "o2"}, discIDs(list))
	assert.Equal(t, discSvc("orders", "o1", "127.0.0.1:80"), list[0])

	// Registering again updates; the default TTL applied to ttl 0.
	upd := discSvc("orders", "o1", "127.0.0.9:81")
	require.NoError(t, d.Register(ctx, upd, 0))
	list, err = d.Discover(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.9:81", list[0].Address)
	pttl := conn.Client().PTTL(ctx, d.keys("orders").dataPrefix+"o1").Val()
	assert.InDelta(t, backends.DefaultRegistrationTTL.Seconds(), pttl.Seconds(), 1)

	// Moving an ID to another service removes it from the old one.
	require.NoError(t, d.Register(ctx, discSvc("billing", "o2", "127.0.1.2:80"), time.Minute))
	list, err = d.Discover(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, []string{"o1"}, discIDs(list))
	list, err = d.Discover(ctx, "billing")
	require.NoError(t, err)
	assert.Equal(t, []string{"b1", "o2"}, discIDs(list))

	require.NoError(t, d.Deregister(ctx, "o1"))
	list, err = d.Discover(ctx, "orders")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.ErrorIs(t, d.Deregister(ctx, "o1"), backends.ErrNotFound)
	assert.ErrorIs(t, d.Deregister(ctx, "never"), backends.ErrNotFound)

	// Another Discovery sees the instances but does not own them.
	other := discNew(t, conn, kitNS(t, "test"), nil)
	list, err = other.Discover(ctx, "billing")
	require.NoError(t, err)
	assert.Len(t, list, 2)
	assert.ErrorIs(t, other.Deregister(ctx, "b1"), backends.ErrNotFound)
	// A different env is isolated.
	prod := discNew(t, conn, kitNS(t, "prod"), nil)
	list, err = prod.Discover(ctx, "billing")
	require.NoError(t, err)
	assert.Empty(t, list)

	require.NoError(t, d.HealthCheck(ctx))

	// Close deregisters.
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "Close is idempotent")
	list, err = other.Discover(ctx, "billing")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.ErrorIs(t, d.Register(ctx, discSvc("orders", "o1", "x:1"), 0), backends.ErrClosed)
	_, err = d.Discover(ctx, "orders")
	assert.ErrorIs(t, err, backends.ErrClosed)
	_, err = d.Watch(ctx, "orders")
	assert.ErrorIs(t, err, backends.ErrClosed)
	assert.ErrorIs(t, d.Deregister(ctx, "o1"), backends.ErrClosed)
	assert.ErrorIs(t, d.HealthCheck(ctx), backends.ErrClosed)
}

func TestDiscoveryInvalidInput(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	_, err := newRegistry(nil, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newRegistry(conn, backends.DiscoveryOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "env is required")
	_, err = newRegistry(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}, RetryMin: -1})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newRegistry(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}, RetryMin: time.Second, RetryMax: time.Millisecond})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)

	d := discNew(t, conn, kitNS(t, "test"), nil)
	for _, svc := range []backends.ServiceInfo{
		{ID: "", Name: "s", Address: "a:1"},
		{ID: "i", Name: "", Address: "a:1"},
		{ID: "i", Name: "a/b", Address: "a:1"},
		{ID: "i", Name: "s", Address: ""},
		{ID: "i", Name: "s", Address: "a:1", Weight: -1},
	} {
		assert.ErrorIs(t, d.Register(ctx, svc, 0), backends.ErrInvalidArgument, "%+v", svc)
	}
	assert.ErrorIs(t, d.Register(ctx, discSvc("s", "i", "a:1"), -time.Second), backends.ErrInvalidArgument)
	assert.ErrorIs(t, d.Register(ctx, discSvc("s", "i", "a:1"), time.Millisecond), backends.ErrInvalidArgument)
	_, err = d.Discover(ctx, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = d.Watch(ctx, "x\x00")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.ErrorIs(t, d.Deregister(ctx, ""), backends.ErrInvalidArgument)

	// Glob and hash-tag characters in names are plain characters.
	require.NoError(t, d.Register(ctx, discSvc("we{ir}d*[x]", "id{1}?", "a:1"), time.Minute))
	list, err := d.Discover(ctx, "we{ir}d*[x]")
	require.NoError(t, err)
	assert.Equal(t, []string{"id{1}?"}, discIDs(list))
	list, err = d.Discover(ctx, "we(ir)d*[x]")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestDiscoveryUnavailable(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	d := discNew(t, conn, kitNS(t, "test"), nil)
	r.Stop()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := d.Register(cctx, discSvc("s", "i", "a:1"), time.Second)
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	assert.ErrorIs(t, d.Deregister(ctx, "i"), backends.ErrNotFound, "a failed Register keeps nothing")
	_, err = d.Discover(cctx, "s")
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	_, err = d.Watch(cctx, "s")
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	assert.ErrorIs(t, d.HealthCheck(cctx), backends.ErrUnavailable)

	// A connector that was never connected.
	idle, err := NewConnector(Config{URL: r.URL()}, nil)
	require.NoError(t, err)
	d2 := discNew(t, idle, kitNS(t, "test"), nil)
	_, err = d2.Discover(ctx, "s")
	assert.ErrorIs(t, err, backends.ErrUnavailable)

	// A canceled context is reported as such.
	r.Start()
	canceled, cancel2 := context.WithCancel(ctx)
	cancel2()
	_, err = d.Discover(canceled, "s")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestDiscoveryKeepAlive(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	var mu sync.Mutex
	var events []backends.RegistrationEvent
	d := discNew(t, conn, kitNS(t, "test"), func(ev backends.RegistrationEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	observer := discNew(t, conn, kitNS(t, "test"), nil)
	const ttl = 300 * time.Millisecond
	require.NoError(t, d.Register(ctx, discSvc("ka", "i1", "a:1"), ttl))
	// Alive for four TTLs: never missing from Discover.
	require.Never(t, func() bool {
		list, err := observer.Discover(ctx, "ka")
		return err != nil || len(list) != 1
	}, 4*ttl, 20*time.Millisecond)
	mu.Lock()
	assert.Empty(t, events, "no loss reported while healthy")
	mu.Unlock()

	// Shortening the TTL of a running registration reschedules the keep-alive.
	require.NoError(t, d.Register(ctx, discSvc("ka", "i1", "a:1"), 60*time.Millisecond))
	require.Never(t, func() bool {
		list, err := observer.Discover(ctx, "ka")
		return err != nil || len(list) != 1
	}, 500*time.Millisecond, 10*time.Millisecond)
}

func TestDiscoverySelfHealing(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	states := make(chan backends.RegistrationEvent, 16)
	d := discNew(t, conn, kitNS(t, "test"), func(ev backends.RegistrationEvent) { states <- ev })
	svc := discSvc("heal", "h1", "a:1")
	require.NoError(t, d.Register(ctx, svc, 600*time.Millisecond))

	// The server comes back empty: the next keep-alive (or the failed one
	// while it is down) loses the registration and restores it.
	r.Restart()
	next := func() backends.RegistrationEvent {
		select {
		case ev := <-states:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no registration event within 10s")
		}
		return backends.RegistrationEvent{}
	}
	lost := next()
	assert.Equal(t, backends.RegistrationLost, lost.State)
	assert.Equal(t, "h1", lost.ServiceID)
	assert.Equal(t, "heal", lost.ServiceName)
	assert.Error(t, lost.Err)
	restored := next()
	assert.Equal(t, backends.RegistrationRestored, restored.State)
	assert.NoError(t, restored.Err)
	list, err := d.Discover(ctx, "heal")
	require.NoError(t, err)
	assert.Equal(t, []backends.ServiceInfo{svc}, list)

	// Someone deletes the instance: restored again.
	require.NoError(t, conn.Client().Del(ctx, d.keys("heal").dataPrefix+"h1").Err())
	assert.Equal(t, backends.RegistrationLost, next().State)
	assert.Equal(t, backends.RegistrationRestored, next().State)
	require.Eventually(t, func() bool {
		list, err := d.Discover(ctx, "heal")
		return err == nil && len(list) == 1
	}, 5*time.Second, 10*time.Millisecond)

	// A longer outage: one loss, retries with backoff, one restoration.
	r.Stop()
	assert.Equal(t, backends.RegistrationLost, next().State)
	select {
	case ev := <-states:
		t.Fatalf("unexpected %v while the server is down", ev.State)
	case <-time.After(800 * time.Millisecond):
	}
	r.Start()
	assert.Equal(t, backends.RegistrationRestored, next().State)
	require.Eventually(t, func() bool {
		list, err := d.Discover(ctx, "heal")
		return err == nil && len(list) == 1
	}, 5*time.Second, 10*time.Millisecond)
}

func TestDiscoveryCallbackMayDeregister(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	var d *registry
	deregistered := make(chan error, 1)
	d = discNew(t, conn, kitNS(t, "test"), func(ev backends.RegistrationEvent) {
		if ev.State == backends.RegistrationLost {
			deregistered <- d.Deregister(ctx, ev.ServiceID)
		}
	})
	require.NoError(t, d.Register(ctx, discSvc("cb", "c1", "a:1"), 150*time.Millisecond))
	require.NoError(t, conn.Client().Del(ctx, d.keys("cb").dataPrefix+"c1").Err())
	select {
	case err := <-deregistered:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("callback did not run")
	}
	list, err := d.Discover(ctx, "cb")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.ErrorIs(t, d.Deregister(ctx, "c1"), backends.ErrNotFound)
}

func TestDiscoveryExpiryWhenOwnerDisconnected(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	ownerConn := kitConnect(t, Config{URL: r.URL()})
	owner := discNew(t, ownerConn, ns, nil)
	watcher := discNew(t, conn, ns, nil)

	ch, err := watcher.Watch(ctx, "exp")
	require.NoError(t, err)
	assert.Equal(t, backends.ServiceSnapshot, discNext(t, ch).Type)
	svc := discSvc("exp", "e1", "a:1")
	require.NoError(t, owner.Register(ctx, svc, 500*time.Millisecond))
	ev := discNext(t, ch)
	require.Equal(t, backends.ServiceAdded, ev.Type)

	// The owner "crashes": its keep-alives stop reaching Redis.
	start := time.Now()
	require.NoError(t, ownerConn.Disconnect(ctx))
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, svc, ev.Service, "removed events carry the last known info")
	t.Logf("removed %v after the owner's disconnect (ttl 500ms, sweep every %v)", time.Since(start).Round(time.Millisecond), discSweepInterval)
	list, err := watcher.Discover(ctx, "exp")
	require.NoError(t, err)
	assert.Empty(t, list)

	// The owner's operations fail cleanly and Close does not hang.
	_, err = owner.Discover(ctx, "exp")
	assert.ErrorIs(t, err, backends.ErrClosed)
	require.NoError(t, owner.Close())
}

func TestDiscoveryWatch(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	d := discNew(t, conn, ns, nil)
	w := discNew(t, conn, ns, nil)
	a := discSvc("web", "a", "127.0.0.1:80")
	require.NoError(t, d.Register(ctx, a, time.Minute))

	wctx, cancel := context.WithCancel(ctx)
	ch, err := w.Watch(wctx, "web")
	require.NoError(t, err)
	snap := discNext(t, ch)
	require.Equal(t, backends.ServiceSnapshot, snap.Type)
	assert.Equal(t, []backends.ServiceInfo{a}, snap.Instances)
	assert.NotZero(t, snap.Revision)

	b := discSvc("web", "b", "127.0.0.2:80")
	require.NoError(t, d.Register(ctx, b, time.Minute))
	ev := discNext(t, ch)
	assert.Equal(t, backends.ServiceAdded, ev.Type)
	assert.Equal(t, b, ev.Service)
	assert.Greater(t, ev.Revision, snap.Revision)

	// An identical re-registration is not an event; a changed one is.
	require.NoError(t, d.Register(ctx, b, time.Minute))
	b.Address = "127.0.0.3:80"
	require.NoError(t, d.Register(ctx, b, time.Minute))
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceUpdated, ev.Type)
	assert.Equal(t, b, ev.Service)

	require.NoError(t, d.Deregister(ctx, "a"))
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, a, ev.Service)

	// Other services are not seen.
	require.NoError(t, d.Register(ctx, discSvc("db", "x", "a:1"), time.Minute))
	discNoEvent(t, ch, 200*time.Millisecond)

	// Latency from Register returning to the event arriving.
	const samples = 20
	lat := make([]time.Duration, 0, samples)
	for i := range samples {
		s := discSvc("web", "lat"+string(rune('a'+i)), "127.1.0.1:80")
		start := time.Now()
		require.NoError(t, d.Register(ctx, s, time.Minute))
		ev := discNext(t, ch)
		lat = append(lat, time.Since(start))
		require.Equal(t, backends.ServiceAdded, ev.Type)
		require.Equal(t, s.ID, ev.Service.ID)
	}
	slices.Sort(lat)
	t.Logf("register→watch event latency over %d samples: p50 %v, max %v (includes the register round trip)", samples, lat[samples/2], lat[samples-1])

	// Cancel closes the channel.
	cancel()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	}, 5*time.Second, 5*time.Millisecond)

	// Close closes the channels of running watches.
	ch2, err := w.Watch(ctx, "web")
	require.NoError(t, err)
	assert.Equal(t, backends.ServiceSnapshot, discNext(t, ch2).Type)
	require.NoError(t, w.Close())
	_, ok := <-ch2
	assert.False(t, ok, "Close closes the channel")
}

func TestDiscoveryWatchSurvivesRestart(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	owner := discNew(t, conn, ns, nil)
	w := discNew(t, conn, ns, nil)
	require.NoError(t, owner.Register(ctx, discSvc("svc", "a", "a:1"), 500*time.Millisecond))

	ch, err := w.Watch(ctx, "svc")
	require.NoError(t, err)
	var view discView
	var mu sync.Mutex
	var seen []backends.ServiceEvent
	wait := discFollow(ch, &view, func(ev backends.ServiceEvent) {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	})
	require.Eventually(t, func() bool { return slices.Equal(view.sorted(), []string{"a"}) }, 5*time.Second, 5*time.Millisecond)

	r.Restart() // empty data
	// A new instance right after the restart (retried: the pool reconnects).
	require.Eventually(t, func() bool {
		return owner.Register(ctx, discSvc("svc", "b", "b:1"), 500*time.Millisecond) == nil
	}, 5*time.Second, 10*time.Millisecond)
	// "a" heals itself; the watcher ends with exactly what Redis holds.
	require.Eventually(t, func() bool { return slices.Equal(view.sorted(), []string{"a", "b"}) }, 10*time.Second, 10*time.Millisecond)
	list, err := w.Discover(ctx, "svc")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, discIDs(list))

	// And it keeps following changes in the new epoch.
	require.NoError(t, owner.Deregister(ctx, "a"))
	require.Eventually(t, func() bool { return slices.Equal(view.sorted(), []string{"b"}) }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, w.Close())
	wait()
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range seen {
		t.Logf("event %v %s rev %d", ev.Type, ev.Service.ID, ev.Revision)
	}
}

func TestDiscoveryWatchGapResync(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	d := discNew(t, conn, ns, nil)
	watchConn := kitConnect(t, Config{URL: r.URL()})
	w := discNew(t, watchConn, ns, nil)
	a, b, c := discSvc("gap", "a", "a:1"), discSvc("gap", "b", "b:1"), discSvc("gap", "c", "c:1")
	require.NoError(t, d.Register(ctx, a, time.Minute))
	require.NoError(t, d.Register(ctx, b, time.Minute))

	ch, err := w.Watch(ctx, "gap")
	require.NoError(t, err)
	snap := discNext(t, ch)
	require.Equal(t, []string{"a", "b"}, discIDs(snap.Instances))

	// The watcher loses its connection; meanwhile the service changes and
	// the log is trimmed away, so the changes cannot be replayed.
	require.NoError(t, watchConn.Disconnect(ctx))
	require.NoError(t, d.Deregister(ctx, "a"))
	b.Address = "b:2"
	require.NoError(t, d.Register(ctx, b, time.Minute))
	require.NoError(t, d.Register(ctx, c, time.Minute))
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, d.keys("gap").log, 0).Err())
	require.NoError(t, watchConn.Connect(ctx))

	// Exactly the difference, in ID order.
	ev := discNext(t, ch)
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, a, ev.Service)
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceUpdated, ev.Type)
	assert.Equal(t, b, ev.Service)
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceAdded, ev.Type)
	assert.Equal(t, c, ev.Service)
	discNoEvent(t, ch, 300*time.Millisecond)

	// Reading continues after the resync.
	require.NoError(t, d.Deregister(ctx, "c"))
	ev = discNext(t, ch)
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, "c", ev.Service.ID)
}

func TestDiscoverySlowWatcherTrimmed(t *testing.T) {
	// A watcher that stops reading falls behind a log trimmed to a few
	// entries; when it reads again it gets the difference, not the history.
	_, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	d := discNew(t, conn, ns, nil)
	w := discNew(t, conn, ns, nil)
	ch, err := w.Watch(ctx, "slow")
	require.NoError(t, err)
	assert.Equal(t, backends.ServiceSnapshot, discNext(t, ch).Type)
	// Fill the channel buffer and more, while nobody reads.
	const n = discWatchBuffer + 40
	for i := range n {
		require.NoError(t, d.Register(ctx, discSvc("slow", "i"+string(rune('A'+i/26))+string(rune('a'+i%26)), "a:1"), time.Minute))
	}
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, d.keys("slow").log, 0).Err())
	for i := range 5 {
		require.NoError(t, d.Deregister(ctx, "i"+string(rune('A'+i/26))+string(rune('a'+i%26))))
	}
	var view discView
	view.apply(backends.ServiceEvent{Type: backends.ServiceSnapshot})
	want, err := d.Discover(ctx, "slow")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for {
			select {
			case ev := <-ch:
				view.apply(ev)
				continue
			default:
			}
			return slices.Equal(view.sorted(), discIDs(want))
		}
	}, 10*time.Second, 10*time.Millisecond)
}

func TestDiscoveryConcurrentUse(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "test")
	d := discNew(t, conn, ns, func(backends.RegistrationEvent) {})
	w := discNew(t, conn, ns, nil)
	ch, err := w.Watch(ctx, "conc")
	require.NoError(t, err)
	var view discView
	wait := discFollow(ch, &view, nil)

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				id := "shared"
				if i%5 == 4 {
					id = "own" + string(rune('a'+g))
				}
				svc := discSvc("conc", id, "127.0.0.1:"+string(rune('0'+i%10)))
				assert.NoError(t, d.Register(ctx, svc, 60*time.Millisecond))
				if i%7 == 6 {
					err := d.Deregister(ctx, id)
					if err != nil {
						assert.ErrorIs(t, err, backends.ErrNotFound) // another goroutine got there first
					}
				}
			}
		})
	}
	wg.Wait()
	want, err := d.Discover(ctx, "conc")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slices.Equal(view.sorted(), discIDs(want)) }, 5*time.Second, 10*time.Millisecond,
		"watcher view %v, discover %v", view.sorted(), discIDs(want))
	require.NoError(t, w.Close())
	wait()
}

func TestDiscoveryOnCluster(t *testing.T) {
	addrs := kitCluster(t)
	conn := kitConnect(t, Config{Addrs: addrs})
	ctx := t.Context()
	ns := kitNS(t, "test")
	d := discNew(t, conn, ns, nil)
	w := discNew(t, conn, ns, nil)
	for _, name := range []string{"alpha", "beta", "gamma"} {
		ch, err := w.Watch(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, backends.ServiceSnapshot, discNext(t, ch).Type)
		require.NoError(t, d.Register(ctx, discSvc(name, "i1", "a:1"), 300*time.Millisecond))
		assert.Equal(t, backends.ServiceAdded, discNext(t, ch).Type)
		require.NoError(t, d.Deregister(ctx, "i1"))
		assert.Equal(t, backends.ServiceRemoved, discNext(t, ch).Type)
		// Expiry (the sweep builds data keys inside the script) works too.
		require.NoError(t, d.Register(ctx, discSvc(name, "i2", "a:1"), 300*time.Millisecond))
		assert.Equal(t, backends.ServiceAdded, discNext(t, ch).Type)
		require.NoError(t, conn.Client().Del(ctx, d.keys(name).dataPrefix+"i2").Err())
		require.Eventually(t, func() bool {
			list, err := d.Discover(ctx, name)
			return err == nil && len(list) == 1
		}, 5*time.Second, 10*time.Millisecond, "restored by keep-alive")
		require.NoError(t, d.Deregister(ctx, "i2"))
	}
	// Every key of a service is in one slot.
	k := d.keys("alpha")
	slot := func(key string) int64 {
		s, err := conn.Client().(*goredis.ClusterClient).ClusterKeySlot(ctx, key).Result()
		require.NoError(t, err)
		return s
	}
	for _, key := range []string{k.log, k.meta, k.dataPrefix + "x"} {
		assert.Equal(t, slot(k.index), slot(key), key)
	}
}
