package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/integration/harness"
)

// discWait bounds every wait for an event or a state in these tests.
const discWait = 20 * time.Second

// discConnector returns a connected Connector of its own (a "process").
func discConnector(t *testing.T, srv *harness.Etcd) *etcd.Connector {
	t.Helper()
	c, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
	require.NoError(t, err)
	require.NoError(t, c.Connect(t.Context()))
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func discNew(t *testing.T, conn *etcd.Connector, opts backends.DiscoveryOptions) backends.ServiceDiscovery {
	t.Helper()
	if opts.Namespace.Env == "" {
		opts.Namespace.Env = "test"
	}
	d, err := etcd.NewDiscovery(conn, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func discSvc(name, id, addr string) backends.ServiceInfo {
	return backends.ServiceInfo{Name: name, ID: id, Address: addr}
}

// discWatch starts a watch whose context ends at cleanup.
func discWatch(t *testing.T, d backends.ServiceDiscovery, name string) <-chan backends.ServiceEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	ch, err := d.Watch(ctx, name)
	require.NoError(t, err)
	return ch
}

// discNext returns the next event, failing after discWait.
func discNext(t *testing.T, ch <-chan backends.ServiceEvent) backends.ServiceEvent {
	t.Helper()
	timer := time.NewTimer(discWait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed unexpectedly")
		return ev
	case <-timer.C:
		require.FailNow(t, "no watch event within the bound")
	}
	return backends.ServiceEvent{}
}

// discQuiet asserts that nothing arrives on ch for d.
func discQuiet(t *testing.T, ch <-chan backends.ServiceEvent, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev := <-ch:
		assert.Failf(t, "unexpected watch event", "%+v", ev)
	case <-timer.C:
	}
}

func discIDs(list []backends.ServiceInfo) []string {
	ids := []string{}
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids
}

func discIDsOf(t *testing.T, d backends.ServiceDiscovery, name string) []string {
	t.Helper()
	list, err := d.Discover(t.Context(), name)
	require.NoError(t, err)
	return discIDs(list)
}

// discRecorder collects OnRegistration events.
type discRecorder struct {
	mu  sync.Mutex
	evs []backends.RegistrationEvent
}

func (r *discRecorder) record(ev backends.RegistrationEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *discRecorder) states() []backends.RegistrationState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []backends.RegistrationState{}
	for _, ev := range r.evs {
		out = append(out, ev.State)
	}
	return out
}

func TestDiscoveryRegisterDiscover(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	d := discNew(t, conn, backends.DiscoveryOptions{})
	ctx := t.Context()

	assert.Empty(t, discIDsOf(t, d, "api"))
	require.NoError(t, d.Register(ctx, discSvc("api", "b", "127.0.0.2:80"), 0))
	a := discSvc("api", "a", "127.0.0.1:80")
	a.Metadata, a.Tags, a.Version, a.Weight = map[string]string{"zone": "z1"}, []string{"blue"}, "1.0", 5
	require.NoError(t, d.Register(ctx, a, 30*time.Second))
	require.NoError(t, d.Register(ctx, discSvc("apix", "x", "127.0.0.9:80"), 0))

	list, err := d.Discover(ctx, "api")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, discIDs(list), "sorted by id, api only")
	assert.Equal(t, a, list[0], "everything round-trips")

	// The key layout is the documented one, under a lease of the TTL.
	raw, err := conn.Client().Get(ctx, "baton/test/discovery/api/a")
	require.NoError(t, err)
	require.Len(t, raw.Kvs, 1)
	ttl, err := conn.Client().TimeToLive(ctx, clientv3.LeaseID(raw.Kvs[0].Lease))
	require.NoError(t, err)
	assert.Equal(t, int64(30), ttl.GrantedTTL)

	// Re-registering updates in place (one instance).
	a.Address = "127.0.0.1:81"
	require.NoError(t, d.Register(ctx, a, 0))
	list, err = d.Discover(ctx, "api")
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "127.0.0.1:81", list[0].Address)

	// Deregister: at once, only through the value holding it.
	other := discNew(t, conn, backends.DiscoveryOptions{})
	require.ErrorIs(t, other.Deregister(ctx, "a"), backends.ErrNotFound)
	require.NoError(t, d.Deregister(ctx, "a"))
	assert.Equal(t, []string{"b"}, discIDsOf(t, d, "api"))
	require.ErrorIs(t, d.Deregister(ctx, "a"), backends.ErrNotFound)

	// Bad input.
	require.ErrorIs(t, d.Register(ctx, discSvc("api", "", "x"), 0), backends.ErrInvalidArgument)
	require.ErrorIs(t, d.Register(ctx, discSvc("a/b", "c", "x"), 0), backends.ErrInvalidArgument)
	require.ErrorIs(t, d.Register(ctx, discSvc("api", "c", "x"), -time.Second), backends.ErrInvalidArgument)
	_, err = d.Discover(ctx, "")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = etcd.NewDiscovery(conn, backends.DiscoveryOptions{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "env is required")
	_, err = etcd.NewDiscovery(nil, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"}})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = etcd.NewDiscovery(conn, backends.DiscoveryOptions{Namespace: backends.Namespace{Env: "test"},
		RetryMin: time.Second, RetryMax: time.Millisecond})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	require.NoError(t, d.HealthCheck(ctx))

	// Close revokes at once and makes the value unusable.
	require.NoError(t, d.Close())
	assert.Empty(t, discIDsOf(t, other, "api"))
	require.ErrorIs(t, d.Register(ctx, a, 0), backends.ErrClosed)
	_, err = d.Discover(ctx, "api")
	require.ErrorIs(t, err, backends.ErrClosed)
	require.ErrorIs(t, d.HealthCheck(ctx), backends.ErrClosed)
	require.NoError(t, d.Close(), "idempotent")
}

func TestDiscoveryUnconnected(t *testing.T) {
	conn, err := etcd.NewConnector(etcd.Config{Endpoints: []string{"127.0.0.1:1"}}, nil)
	require.NoError(t, err)
	d := discNew(t, conn, backends.DiscoveryOptions{})
	require.ErrorIs(t, d.Register(t.Context(), discSvc("a", "1", "x"), 0), backends.ErrUnavailable)
	_, err = d.Discover(t.Context(), "a")
	require.ErrorIs(t, err, backends.ErrUnavailable)
	_, err = d.Watch(t.Context(), "a")
	require.ErrorIs(t, err, backends.ErrUnavailable)
	require.ErrorIs(t, d.HealthCheck(t.Context()), backends.ErrUnavailable)
}

func TestDiscoveryKeepAlivePastTTL(t *testing.T) {
	srv := harness.StartEtcd(t)
	d := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	require.NoError(t, d.Register(t.Context(), discSvc("kv", "kv-1", "h:1"), 2*time.Second))
	require.Never(t, func() bool {
		list, err := obs.Discover(t.Context(), "kv")
		return err != nil || len(list) != 1
	}, 6*time.Second, 100*time.Millisecond, "a kept-alive registration expired")
}

func TestDiscoveryTTLExpiryWhenDisconnected(t *testing.T) {
	srv := harness.StartEtcd(t)
	own := discConnector(t, srv)
	var rec discRecorder
	d := discNew(t, own, backends.DiscoveryOptions{OnRegistration: rec.record})
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	w := discWatch(t, obs, "job")
	require.Equal(t, backends.ServiceSnapshot, discNext(t, w).Type)

	require.NoError(t, d.Register(t.Context(), discSvc("job", "j1", "h:1"), 2*time.Second))
	require.Equal(t, backends.ServiceAdded, discNext(t, w).Type)

	crashed := time.Now()
	require.NoError(t, own.Disconnect(t.Context())) // the "process" dies
	ev := discNext(t, w)
	require.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, "j1", ev.Service.ID)
	t.Logf("removed %v after the connector was disconnected (ttl 2s)", time.Since(crashed).Round(time.Millisecond))
	assert.Empty(t, discIDsOf(t, obs, "job"))

	// The keeper noticed and keeps trying; it heals once the connector is
	// back, and Close still stops everything without hanging.
	require.Eventually(t, func() bool { return slices.Contains(rec.states(), backends.RegistrationLost) },
		discWait, 20*time.Millisecond)
	require.NoError(t, own.Connect(t.Context()))
	require.Eventually(t, func() bool { return slices.Contains(rec.states(), backends.RegistrationRestored) },
		discWait, 20*time.Millisecond)
	assert.Equal(t, backends.ServiceAdded, discNext(t, w).Type)
	assert.Equal(t, []string{"j1"}, discIDsOf(t, obs, "job"))
	require.NoError(t, d.Close())
}

func TestDiscoverySelfHealingAfterWipe(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	var rec discRecorder
	d := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{
		OnRegistration: rec.record, RetryMin: 50 * time.Millisecond, RetryMax: time.Second})
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	a := discSvc("heal", "a", "h:1")
	require.NoError(t, d.Register(t.Context(), a, 3*time.Second))
	w := discWatch(t, obs, "heal")
	snap := discNext(t, w)
	require.Equal(t, []backends.ServiceInfo{a}, snap.Instances)

	srv.Wipe()
	srv.Start()
	wiped := time.Now()
	require.Eventually(t, func() bool {
		s := rec.states()
		return len(s) >= 2 && s[0] == backends.RegistrationLost && s[len(s)-1] == backends.RegistrationRestored
	}, discWait, 20*time.Millisecond, "lost then restored")
	t.Logf("registration events %v, restored %v after the empty restart", rec.states(), time.Since(wiped).Round(time.Millisecond))
	rec.mu.Lock()
	assert.Error(t, rec.evs[0].Err, "the loss carries its cause")
	assert.Equal(t, "a", rec.evs[0].ServiceID)
	assert.Equal(t, "heal", rec.evs[0].ServiceName)
	rec.mu.Unlock()
	require.Eventually(t, func() bool {
		list, err := obs.Discover(t.Context(), "heal")
		return err == nil && len(list) == 1 && assert.ObjectsAreEqual(a, list[0])
	}, discWait, 20*time.Millisecond)

	// The watcher's view converges: whatever it saw (removed + added, or
	// nothing when the restore won the race), it ends with a.
	view := map[string]backends.ServiceInfo{"a": a}
	deadline := time.Now().Add(discWait)
	b := discSvc("heal", "b", "h:2")
	require.NoError(t, d.Register(t.Context(), b, 3*time.Second)) // a marker
	for {
		ev := discNext(t, w)
		switch ev.Type {
		case backends.ServiceAdded, backends.ServiceUpdated:
			view[ev.Service.ID] = ev.Service
		case backends.ServiceRemoved:
			delete(view, ev.Service.ID)
		}
		if _, ok := view["b"]; ok || time.Now().After(deadline) {
			break
		}
	}
	assert.Equal(t, map[string]backends.ServiceInfo{"a": a, "b": b}, view)

	// The healed registration is an ordinary one.
	require.NoError(t, d.Deregister(t.Context(), "a"))
	assert.Equal(t, []string{"b"}, discIDsOf(t, obs, "heal"))
}

func TestDiscoverySelfHealingAfterKeyDeleted(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	var rec discRecorder
	d := discNew(t, conn, backends.DiscoveryOptions{OnRegistration: rec.record})
	require.NoError(t, d.Register(t.Context(), discSvc("del", "x", "h:1"), 10*time.Second))
	_, err := conn.Client().Delete(t.Context(), "baton/test/discovery/del/x")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.Equal(rec.states(), []backends.RegistrationState{backends.RegistrationLost, backends.RegistrationRestored})
	}, discWait, 10*time.Millisecond)
	assert.Equal(t, []string{"x"}, discIDsOf(t, d, "del"))
}

func TestDiscoveryWatchEventsAndLatency(t *testing.T) {
	srv := harness.StartEtcd(t)
	d := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	ctx := t.Context()
	b, a := discSvc("mail", "b", "h:2"), discSvc("mail", "a", "h:1")
	require.NoError(t, d.Register(ctx, b, 0))
	require.NoError(t, d.Register(ctx, a, 0))

	w := discWatch(t, obs, "mail")
	snap := discNext(t, w)
	require.Equal(t, backends.ServiceSnapshot, snap.Type)
	require.Equal(t, []backends.ServiceInfo{a, b}, snap.Instances)
	require.NotZero(t, snap.Revision)

	c := discSvc("mail", "c", "h:3")
	require.NoError(t, d.Register(ctx, c, 0))
	ev := discNext(t, w)
	assert.Equal(t, backends.ServiceAdded, ev.Type)
	assert.Equal(t, c, ev.Service)
	assert.Greater(t, ev.Revision, snap.Revision)

	// Same info again: no event. Changed info: updated.
	require.NoError(t, d.Register(ctx, c, 0))
	c.Metadata = map[string]string{"state": "draining"}
	require.NoError(t, d.Register(ctx, c, 0))
	ev = discNext(t, w)
	assert.Equal(t, backends.ServiceUpdated, ev.Type)
	assert.Equal(t, c, ev.Service)

	require.NoError(t, d.Deregister(ctx, "a"))
	ev = discNext(t, w)
	assert.Equal(t, backends.ServiceRemoved, ev.Type)
	assert.Equal(t, a, ev.Service, "removed carries the last known instance")

	// Register → watch event latency.
	var lat []time.Duration
	for i := range 20 {
		svc := discSvc("mail", fmt.Sprintf("lat-%02d", i), "h:9")
		start := time.Now()
		require.NoError(t, d.Register(ctx, svc, 0))
		for {
			ev := discNext(t, w)
			if ev.Type == backends.ServiceAdded && ev.Service.ID == svc.ID {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("register → watch event latency over %d samples: p50 %v, max %v (includes the lease grant and put)",
		len(lat), lat[len(lat)/2], lat[len(lat)-1])

	// Ending the context closes the channel.
	wctx, cancel := context.WithCancel(ctx)
	ch, err := obs.Watch(wctx, "mail")
	require.NoError(t, err)
	require.Equal(t, backends.ServiceSnapshot, discNext(t, ch).Type)
	cancel()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	}, discWait, 10*time.Millisecond)

	// Close closes the rest.
	require.NoError(t, obs.Close())
	for range w {
	}
}

// TestDiscoveryWatchResumesAfterReconnect: changes made while the watcher's
// connection is down are delivered, in order, once it is back.
func TestDiscoveryWatchResumesAfterReconnect(t *testing.T) {
	srv := harness.StartEtcd(t)
	d := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	obsConn := discConnector(t, srv)
	obs := discNew(t, obsConn, backends.DiscoveryOptions{})
	ctx := t.Context()
	require.NoError(t, d.Register(ctx, discSvc("rs", "a", "h:1"), 0))
	w := discWatch(t, obs, "rs")
	require.Len(t, discNext(t, w).Instances, 1)

	require.NoError(t, obsConn.Disconnect(ctx))
	require.NoError(t, d.Register(ctx, discSvc("rs", "b", "h:2"), 0))
	require.NoError(t, d.Register(ctx, discSvc("rs", "a", "h:1b"), 0))
	require.NoError(t, d.Deregister(ctx, "b"))
	require.NoError(t, obsConn.Connect(ctx))

	want := []string{"added b", "updated a", "removed b"}
	var got []string
	for len(got) < len(want) {
		ev := discNext(t, w)
		got = append(got, ev.Type.String()+" "+ev.Service.ID)
	}
	assert.Equal(t, want, got, "every change, in order")
	discQuiet(t, w, 200*time.Millisecond)
}

// TestDiscoveryWatchSurvivesKill: the server is killed and restarted with
// its data; the watcher misses nothing written after the restart.
func TestDiscoveryWatchSurvivesKill(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	d := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	require.NoError(t, d.Register(t.Context(), discSvc("k", "a", "h:1"), 5*time.Second))
	w := discWatch(t, obs, "k")
	require.Len(t, discNext(t, w).Instances, 1)

	srv.Stop()
	srv.Start()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		ids = append(ids, id)
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			return d.Register(ctx, discSvc("k", id, "h:2"), 5*time.Second) == nil
		}, discWait, 50*time.Millisecond)
	}
	var got []string
	for len(got) < len(ids) {
		ev := discNext(t, w)
		require.Equal(t, backends.ServiceAdded, ev.Type, "%+v", ev)
		got = append(got, ev.Service.ID)
	}
	assert.Equal(t, ids, got)
	assert.Equal(t, append([]string{"a"}, ids...), discIDsOf(t, obs, "k"))
}

// TestDiscoveryWatchCompaction: the history the watcher needs is compacted
// while it is disconnected; it re-lists and sends exactly the difference.
func TestDiscoveryWatchCompaction(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	d := discNew(t, conn, backends.DiscoveryOptions{})
	obsConn := discConnector(t, srv)
	obs := discNew(t, obsConn, backends.DiscoveryOptions{})
	ctx := t.Context()
	a, b, c := discSvc("cp", "a", "h:1"), discSvc("cp", "b", "h:2"), discSvc("cp", "c", "h:3")
	require.NoError(t, d.Register(ctx, a, 0))
	require.NoError(t, d.Register(ctx, b, 0))
	w := discWatch(t, obs, "cp")
	require.Len(t, discNext(t, w).Instances, 2)

	require.NoError(t, obsConn.Disconnect(ctx))
	b.Address = "h:2b"
	require.NoError(t, d.Register(ctx, b, 0))
	require.NoError(t, d.Deregister(ctx, "a"))
	require.NoError(t, d.Register(ctx, c, 0))
	// c is also updated twice and d added then removed: the difference
	// shows neither the intermediate states nor d.
	c.Version = "2"
	require.NoError(t, d.Register(ctx, c, 0))
	require.NoError(t, d.Register(ctx, discSvc("cp", "d", "h:4"), 0))
	require.NoError(t, d.Deregister(ctx, "d"))
	srv.CompactNow(t)
	require.NoError(t, obsConn.Connect(ctx))

	want := []backends.ServiceEvent{
		{Type: backends.ServiceRemoved, Service: a},
		{Type: backends.ServiceUpdated, Service: b},
		{Type: backends.ServiceAdded, Service: c},
	}
	for _, exp := range want {
		ev := discNext(t, w)
		ev.Revision = 0
		assert.Equal(t, exp, ev)
	}
	discQuiet(t, w, 300*time.Millisecond)

	// And it follows live changes afterwards.
	require.NoError(t, d.Register(ctx, a, 0))
	ev := discNext(t, w)
	assert.Equal(t, backends.ServiceAdded, ev.Type)
	assert.Equal(t, "a", ev.Service.ID)
}

// TestDiscoveryWatchWipedServer: etcd comes back with no data (revisions
// restart at 1); the watcher notices and sends the difference instead of
// waiting for revisions that the new server reaches only much later.
func TestDiscoveryWatchWipedServer(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	writer := discConnector(t, srv)
	obs := discNew(t, discConnector(t, srv), backends.DiscoveryOptions{})
	ctx := t.Context()
	// Plain keys without a keeper, and enough revisions that the new
	// server stays below them.
	put := func(s backends.ServiceInfo) {
		require.Eventually(t, func() bool {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := writer.Client().Put(pctx, "baton/test/discovery/wp/"+s.ID,
				fmt.Sprintf(`{"id":%q,"name":"wp","address":%q}`, s.ID, s.Address))
			return err == nil
		}, discWait, 50*time.Millisecond)
	}
	for i := range 30 {
		put(discSvc("wp", "old", fmt.Sprintf("h:%d", i)))
	}
	w := discWatch(t, obs, "wp")
	require.Equal(t, []string{"old"}, discIDs(discNext(t, w).Instances))

	srv.Wipe()
	srv.Start()
	fresh := discSvc("wp", "fresh", "h:1")
	put(fresh)

	got := map[string]backends.ServiceEventType{}
	for len(got) < 2 {
		ev := discNext(t, w)
		got[ev.Service.ID] = ev.Type
	}
	assert.Equal(t, map[string]backends.ServiceEventType{"old": backends.ServiceRemoved, "fresh": backends.ServiceAdded}, got)
	discQuiet(t, w, 300*time.Millisecond)
	assert.Equal(t, []string{"fresh"}, discIDsOf(t, obs, "wp"))
}
