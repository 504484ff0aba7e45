package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// RunDiscovery runs the service discovery cases against target.NewDiscovery.
//
// Cases run one at a time: first the ordinary ones, then the fault cases that
// trim history, stop, restart or wipe target.Server. A fault case leaves the
// server up and healthy before it returns (also when it fails), so a later
// case never inherits an outage.
func RunDiscovery(t *testing.T, target Target) {
	t.Helper()
	require.NotNil(t, target.NewDiscovery, "conformance: %s has no discovery factory", target.Name)
	s := discoverySuite{target: target}
	runCases(t, []testCase{
		{"register-discover", false, s.registerDiscover},
		{"metadata-round-trip", false, s.metadataRoundTrip},
		{"reregister-updates", false, s.reregisterUpdates},
		{"deregister", false, s.deregister},
		{"invalid-service-info", false, s.invalidServiceInfo},
		{"services-isolated", false, s.servicesIsolated},
		{"env-isolation", false, s.envIsolation},
		{"health-check", false, s.healthCheck},
		{"watch-snapshot-and-changes", false, s.watchSnapshotAndChanges},
		{"watch-cancel-closes", false, s.watchCancelCloses},
		{"keepalive-outlives-ttl", false, s.keepaliveOutlivesTTL},
		{"ttl-expiry", false, s.ttlExpiry},
		{"close-releases-registrations", false, s.closeReleases},
		// Fault cases: after every ordinary case.
		{"watch-after-history-trim", false, s.watchAfterHistoryTrim},
		{"watch-survives-restart", false, s.watchSurvivesRestart},
		{"self-healing-after-empty-restart", false, s.selfHealingAfterEmptyRestart},
	})
}

type discoverySuite struct{ target Target }

// newDiscovery builds a discovery in ns and returns its Crash too.
func (s discoverySuite) newDiscovery(t *testing.T, ns backends.Namespace, opts ...func(*backends.DiscoveryOptions)) (backends.ServiceDiscovery, Crash) {
	t.Helper()
	o := backends.DiscoveryOptions{Namespace: ns}
	for _, f := range opts {
		f(&o)
	}
	d, crash := s.target.NewDiscovery(t, o)
	require.NotNil(t, d, "the discovery factory returned nil")
	return d, crash
}

// fresh builds a discovery in an environment of its own.
func (s discoverySuite) fresh(t *testing.T) (backends.ServiceDiscovery, backends.Namespace) {
	t.Helper()
	ns := uniqueNamespace()
	d, _ := s.newDiscovery(t, ns)
	return d, ns
}

func svcInfo(name, id string) backends.ServiceInfo {
	return backends.ServiceInfo{Name: name, ID: id, Address: "127.0.0.1:" + fmt.Sprint(7000+len(id))}
}

func register(t *testing.T, d backends.ServiceDiscovery, svc backends.ServiceInfo, ttl time.Duration) {
	t.Helper()
	require.NoError(t, d.Register(ctxFor(t, opTimeout), svc, ttl), "register %s/%s", svc.Name, svc.ID)
}

// normService makes empty and nil metadata/tags compare equal.
func normService(s backends.ServiceInfo) backends.ServiceInfo {
	if len(s.Metadata) == 0 {
		s.Metadata = nil
	}
	if len(s.Tags) == 0 {
		s.Tags = nil
	}
	return s
}

func normServices(list []backends.ServiceInfo) []backends.ServiceInfo {
	out := make([]backends.ServiceInfo, 0, len(list))
	for _, s := range list {
		out = append(out, normService(s))
	}
	return out
}

func discover(t *testing.T, d backends.ServiceDiscovery, name string) []backends.ServiceInfo {
	t.Helper()
	list, err := d.Discover(ctxFor(t, opTimeout), name)
	require.NoError(t, err, "discover %s", name)
	return normServices(list)
}

func serviceIDs(list []backends.ServiceInfo) []string {
	ids := make([]string, 0, len(list))
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids
}

// eventLog records everything a watch channel delivers until it closes.
type eventLog[E any] struct {
	mu     sync.Mutex
	events []E
	done   chan struct{}
}

// recordEvents drains ch into a log. cancel must end the watch; the test's
// cleanup calls it and fails if the channel does not close in time.
func recordEvents[E any](t *testing.T, ch <-chan E, cancel context.CancelFunc) *eventLog[E] {
	t.Helper()
	l := &eventLog[E]{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ev := range ch {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.done:
		case <-time.After(opTimeout):
			t.Errorf("conformance: watch channel still open %v after its context ended", opTimeout)
		}
	})
	return l
}

func (l *eventLog[E]) all() []E {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// waitFor polls until cond holds for the events so far, failing the test
// with the events seen when d passes.
func (l *eventLog[E]) waitFor(t *testing.T, d time.Duration, what string, cond func([]E) bool) []E {
	t.Helper()
	deadline := time.Now().Add(d)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		evs := l.all()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out", "%s: not within %v; events so far (%d): %+v", what, d, len(evs), evs)
		}
		<-ticker.C
	}
}

// waitClosed waits for the watch channel to close.
func (l *eventLog[E]) waitClosed(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(d):
		require.FailNow(t, "timed out", "%s: channel not closed within %v", what, d)
	}
}

func watchServices(t *testing.T, d backends.ServiceDiscovery, name string) *eventLog[backends.ServiceEvent] {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := d.Watch(ctx, name)
	if err != nil {
		cancel()
	}
	require.NoError(t, err, "watch %s", name)
	require.NotNil(t, ch, "watch %s returned a nil channel", name)
	return recordEvents(t, ch, cancel)
}

// serviceView folds a watch's events into the instance set the watcher
// believes in. It is an error for the first event not to be a snapshot or
// for a later one to be.
func serviceView(evs []backends.ServiceEvent) (map[string]backends.ServiceInfo, error) {
	view := make(map[string]backends.ServiceInfo)
	for i, ev := range evs {
		switch {
		case i == 0 && ev.Type != backends.ServiceSnapshot:
			return nil, fmt.Errorf("first event is %s, want snapshot", ev.Type)
		case i > 0 && ev.Type == backends.ServiceSnapshot:
			return nil, fmt.Errorf("event %d is a second snapshot; after the first only added/updated/removed are allowed", i)
		}
		switch ev.Type {
		case backends.ServiceSnapshot:
			for _, s := range ev.Instances {
				view[s.ID] = normService(s)
			}
		case backends.ServiceAdded, backends.ServiceUpdated:
			view[ev.Service.ID] = normService(ev.Service)
		case backends.ServiceRemoved:
			delete(view, ev.Service.ID)
		default:
			return nil, fmt.Errorf("event %d has unknown type %d", i, ev.Type)
		}
	}
	return view, nil
}

func viewOf(list ...backends.ServiceInfo) map[string]backends.ServiceInfo {
	m := make(map[string]backends.ServiceInfo, len(list))
	for _, s := range list {
		m[s.ID] = normService(s)
	}
	return m
}

// waitView waits until the watcher's view equals want.
func waitView(t *testing.T, l *eventLog[backends.ServiceEvent], d time.Duration, what string, want map[string]backends.ServiceInfo) []backends.ServiceEvent {
	t.Helper()
	return l.waitFor(t, d, what, func(evs []backends.ServiceEvent) bool {
		view, err := serviceView(evs)
		if err != nil {
			require.FailNow(t, "bad event sequence", "%s: %v; events: %+v", what, err, evs)
		}
		return len(evs) > 0 && assert.ObjectsAreEqual(want, view)
	})
}

// hasServiceEvent matches an event of one of the types for id.
func hasServiceEvent(evs []backends.ServiceEvent, id string, types ...backends.ServiceEventType) bool {
	return slices.ContainsFunc(evs, func(ev backends.ServiceEvent) bool {
		return ev.Service.ID == id && slices.Contains(types, ev.Type)
	})
}

func (s discoverySuite) registerDiscover(t *testing.T) {
	d, _ := s.fresh(t)
	assert.Empty(t, discover(t, d, "api"), "discover before any registration")

	b := svcInfo("api", "api-b")
	a := svcInfo("api", "api-a")
	register(t, d, b, 0) // 0 = DefaultRegistrationTTL
	register(t, d, a, 30*time.Second)
	other := svcInfo("db", "db-1")
	register(t, d, other, 0)

	got := discover(t, d, "api")
	assert.Equal(t, normServices([]backends.ServiceInfo{a, b}), got, "instances of api, sorted by id")
	assert.Equal(t, normServices([]backends.ServiceInfo{other}), discover(t, d, "db"))
}

func (s discoverySuite) metadataRoundTrip(t *testing.T) {
	d, ns := s.fresh(t)
	svc := backends.ServiceInfo{
		ID:      "orders-1",
		Name:    "orders",
		Address: "http://127.0.0.1:8080/base?x=1&y=%20",
		Metadata: map[string]string{
			"zone":              "eu-west-1a",
			"empty":             "",
			"unicode":           "日本語 ✓",
			"json":              `{"a":[1,2],"b":"c"}`,
			"with space/slash":  "x y/z",
			"quotes\"and'marks": "line1\nline2\t\"q\"",
			"glob*?[]":          "*?[]^-\\",
		},
		Tags:    []string{"blue", "canary", "with space", "ünï"},
		Version: "1.2.3-rc.1+build.5",
		Weight:  7,
	}
	register(t, d, svc, 0)
	got := discover(t, d, "orders")
	require.Len(t, got, 1)
	assert.Equal(t, normService(svc), got[0], "everything registered comes back unchanged")

	// A separate process sees the same.
	d2, _ := s.newDiscovery(t, ns)
	assert.Equal(t, []backends.ServiceInfo{normService(svc)}, discover(t, d2, "orders"))

	// And so does a watcher's snapshot.
	w := watchServices(t, d2, "orders")
	waitView(t, w, opTimeout, "watch snapshot", viewOf(svc))
}

func (s discoverySuite) reregisterUpdates(t *testing.T) {
	d, ns := s.fresh(t)
	a := svcInfo("pay", "pay-1")
	a.Metadata = map[string]string{"v": "1"}
	register(t, d, a, 0)

	obs, _ := s.newDiscovery(t, ns)
	w := watchServices(t, obs, "pay")
	waitView(t, w, opTimeout, "initial snapshot", viewOf(a))

	a2 := a
	a2.Address = "127.0.0.1:9999"
	a2.Metadata = map[string]string{"v": "2", "extra": "yes"}
	a2.Tags = []string{"t"}
	a2.Weight = 3
	register(t, d, a2, 0)

	evs := waitView(t, w, opTimeout, "view after re-register", viewOf(a2))
	assert.True(t, hasServiceEvent(evs[1:], "pay-1", backends.ServiceUpdated),
		"re-registering an id is an update; events: %+v", evs)
	assert.Equal(t, []backends.ServiceInfo{normService(a2)}, discover(t, obs, "pay"), "one instance, updated in place")
}

func (s discoverySuite) deregister(t *testing.T) {
	d, ns := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	a, b := svcInfo("cart", "cart-a"), svcInfo("cart", "cart-b")
	register(t, d, a, 0)
	register(t, d, b, 0)

	// Another value that registered nothing cannot deregister.
	other, _ := s.newDiscovery(t, ns)
	assert.ErrorIs(t, other.Deregister(ctx, "cart-a"), backends.ErrNotFound, "deregister through a value that does not hold the registration")

	require.NoError(t, d.Deregister(ctx, "cart-a"))
	assert.Equal(t, []string{"cart-b"}, serviceIDs(discover(t, other, "cart")), "removed at once, the other instance stays")
	assert.ErrorIs(t, d.Deregister(ctx, "cart-a"), backends.ErrNotFound, "deregister twice")
	assert.ErrorIs(t, d.Deregister(ctx, "never-registered"), backends.ErrNotFound, "deregister an unknown id")

	require.NoError(t, d.Deregister(ctx, "cart-b"))
	assert.Empty(t, discover(t, other, "cart"))
}

func (s discoverySuite) invalidServiceInfo(t *testing.T) {
	d, _ := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	good := svcInfo("svc", "svc-1")
	mutate := func(f func(*backends.ServiceInfo)) backends.ServiceInfo {
		v := good
		f(&v)
		return v
	}
	bad := map[string]backends.ServiceInfo{
		"empty name":      mutate(func(s *backends.ServiceInfo) { s.Name = "" }),
		"empty id":        mutate(func(s *backends.ServiceInfo) { s.ID = "" }),
		"empty address":   mutate(func(s *backends.ServiceInfo) { s.Address = "" }),
		"name with slash": mutate(func(s *backends.ServiceInfo) { s.Name = "a/b" }),
		"id with slash":   mutate(func(s *backends.ServiceInfo) { s.ID = "x/../y" }),
		"name with nul":   mutate(func(s *backends.ServiceInfo) { s.Name = "a\x00b" }),
		"name too long":   mutate(func(s *backends.ServiceInfo) { s.Name = strings.Repeat("n", backends.MaxNameLen+1) }),
		"negative weight": mutate(func(s *backends.ServiceInfo) { s.Weight = -1 }),
		"address too long": mutate(func(s *backends.ServiceInfo) {
			s.Address = strings.Repeat("a", backends.MaxKeyLen+1)
		}),
		"10 MB of metadata": mutate(func(s *backends.ServiceInfo) {
			s.Metadata = map[string]string{"blob": strings.Repeat("m", 10<<20)}
		}),
		"metadata one byte over": mutate(func(s *backends.ServiceInfo) { // the key counts too
			s.Metadata = map[string]string{"k": strings.Repeat("m", backends.MaxServiceMetadataSize)}
		}),
		"too many tags": mutate(func(s *backends.ServiceInfo) {
			s.Tags = make([]string, backends.MaxServiceTags+1)
			for i := range s.Tags {
				s.Tags[i] = fmt.Sprint("t", i)
			}
		}),
		"tag too long": mutate(func(s *backends.ServiceInfo) {
			s.Tags = []string{"ok", strings.Repeat("t", backends.MaxServiceTagLen+1)}
		}),
		"version too long": mutate(func(s *backends.ServiceInfo) {
			s.Version = strings.Repeat("v", backends.MaxServiceVersionLen+1)
		}),
	}
	for what, svc := range bad {
		err := d.Register(ctx, svc, 0)
		require.ErrorIs(t, err, backends.ErrInvalidArgument, "register with %s", what)
		var ia *backends.InvalidArgumentError
		assert.True(t, errors.As(err, &ia), "register with %s: want an *InvalidArgumentError naming the field, got %T %v", what, err, err)
	}
	assert.ErrorIs(t, d.Register(ctx, good, -time.Second), backends.ErrInvalidArgument, "negative ttl")

	_, err := d.Discover(ctx, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "discover empty name")
	_, err = d.Discover(ctx, "a/b")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "discover name with slash")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := d.Watch(wctx, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "watch empty name")
	assert.Nil(t, ch, "a rejected watch returns no channel")
	assert.ErrorIs(t, d.Deregister(ctx, ""), backends.ErrInvalidArgument, "deregister empty id")

	// Nothing of the above was registered.
	assert.Empty(t, discover(t, d, "svc"))

	// Right at every limit is fine, and round-trips whole.
	full := mutate(func(s *backends.ServiceInfo) {
		s.ID = "svc-full"
		s.Metadata = map[string]string{"k": strings.Repeat("m", backends.MaxServiceMetadataSize-1)}
		s.Tags = make([]string, backends.MaxServiceTags)
		for i := range s.Tags {
			s.Tags[i] = fmt.Sprintf("%03d", i) + strings.Repeat("t", backends.MaxServiceTagLen-3)
		}
		s.Version = strings.Repeat("v", backends.MaxServiceVersionLen)
	})
	register(t, d, full, 0)
	list := discover(t, d, "svc")
	require.Len(t, list, 1)
	assert.Equal(t, normService(full), list[0])
	require.NoError(t, d.Deregister(ctx, full.ID))
}

func (s discoverySuite) servicesIsolated(t *testing.T) {
	d, ns := s.fresh(t)
	// "api" is a prefix of "apix": a careless key layout would mix them.
	register(t, d, svcInfo("api", "api-1"), 0)
	register(t, d, svcInfo("apix", "apix-1"), 0)

	assert.Equal(t, []string{"api-1"}, serviceIDs(discover(t, d, "api")))
	assert.Equal(t, []string{"apix-1"}, serviceIDs(discover(t, d, "apix")))

	obs, _ := s.newDiscovery(t, ns)
	w := watchServices(t, obs, "api")
	waitView(t, w, opTimeout, "api snapshot", viewOf(svcInfo("api", "api-1")))
	register(t, d, svcInfo("apix", "apix-2"), 0)
	require.NoError(t, d.Deregister(ctxFor(t, opTimeout), "apix-1"))
	register(t, d, svcInfo("api", "api-2"), 0) // marker
	evs := waitView(t, w, opTimeout, "api view after the marker", viewOf(svcInfo("api", "api-1"), svcInfo("api", "api-2")))
	for _, ev := range evs {
		for _, s := range append([]backends.ServiceInfo{ev.Service}, ev.Instances...) {
			assert.NotEqual(t, "apix", s.Name, "the api watcher saw an apix event: %+v", ev)
		}
	}
}

func (s discoverySuite) envIsolation(t *testing.T) {
	ns1, ns2 := uniqueNamespace(), uniqueNamespace()
	d1, _ := s.newDiscovery(t, ns1)
	d2, _ := s.newDiscovery(t, ns2)
	s1 := backends.ServiceInfo{Name: "web", ID: "web-1", Address: "127.0.0.1:80"}
	s2 := backends.ServiceInfo{Name: "web", ID: "web-1", Address: "127.0.0.2:80"}
	register(t, d1, s1, 0)

	assert.Empty(t, discover(t, d2, "web"), "env %s sees env %s", ns2.Env, ns1.Env)
	w2 := watchServices(t, d2, "web")
	waitView(t, w2, opTimeout, "empty snapshot in the other env", viewOf())

	register(t, d2, s2, 0)
	assert.Equal(t, []backends.ServiceInfo{normService(s1)}, discover(t, d1, "web"))
	assert.Equal(t, []backends.ServiceInfo{normService(s2)}, discover(t, d2, "web"))

	require.NoError(t, d1.Deregister(ctxFor(t, opTimeout), "web-1"))
	assert.Empty(t, discover(t, d1, "web"))
	assert.Equal(t, []backends.ServiceInfo{normService(s2)}, discover(t, d2, "web"), "deregister in one env leaves the other")
	evs := waitView(t, w2, opTimeout, "other env view", viewOf(s2))
	assert.False(t, hasServiceEvent(evs, "web-1", backends.ServiceRemoved), "the watcher saw another env's removal: %+v", evs)
}

func (s discoverySuite) healthCheck(t *testing.T) {
	d, _ := s.fresh(t)
	assert.NoError(t, d.HealthCheck(ctxFor(t, opTimeout)))
}

func (s discoverySuite) watchSnapshotAndChanges(t *testing.T) {
	d, ns := s.fresh(t)
	a, b := svcInfo("mail", "mail-a"), svcInfo("mail", "mail-b")
	register(t, d, b, 0)
	register(t, d, a, 0)

	obs, _ := s.newDiscovery(t, ns)
	w := watchServices(t, obs, "mail")
	evs := w.waitFor(t, opTimeout, "snapshot event", func(evs []backends.ServiceEvent) bool { return len(evs) > 0 })
	require.Equal(t, backends.ServiceSnapshot, evs[0].Type, "the first event is the snapshot")
	assert.Equal(t, normServices([]backends.ServiceInfo{a, b}), normServices(evs[0].Instances), "snapshot holds the live instances sorted by id")

	c := svcInfo("mail", "mail-c")
	register(t, d, c, 0)
	evs = w.waitFor(t, opTimeout, "added", func(evs []backends.ServiceEvent) bool {
		return hasServiceEvent(evs, "mail-c", backends.ServiceAdded)
	})
	i := slices.IndexFunc(evs, func(ev backends.ServiceEvent) bool { return ev.Service.ID == "mail-c" })
	assert.Equal(t, normService(c), normService(evs[i].Service), "added event carries the instance")

	c2 := c
	c2.Metadata = map[string]string{"state": "draining"}
	register(t, d, c2, 0)
	evs = w.waitFor(t, opTimeout, "updated", func(evs []backends.ServiceEvent) bool {
		return hasServiceEvent(evs, "mail-c", backends.ServiceUpdated)
	})
	i = slices.IndexFunc(evs, func(ev backends.ServiceEvent) bool {
		return ev.Service.ID == "mail-c" && ev.Type == backends.ServiceUpdated
	})
	assert.Equal(t, normService(c2), normService(evs[i].Service), "updated event carries the new instance")

	require.NoError(t, d.Deregister(ctxFor(t, opTimeout), "mail-a"))
	evs = w.waitFor(t, opTimeout, "removed", func(evs []backends.ServiceEvent) bool {
		return hasServiceEvent(evs, "mail-a", backends.ServiceRemoved)
	})
	i = slices.IndexFunc(evs, func(ev backends.ServiceEvent) bool { return ev.Type == backends.ServiceRemoved })
	assert.Equal(t, "mail", evs[i].Service.Name, "removed event names the service")

	// The exact sequence: snapshot, then one event per change, in order.
	evs = waitView(t, w, opTimeout, "final view", viewOf(b, c2))
	types := make([]backends.ServiceEventType, 0, len(evs))
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	assert.Equal(t, []backends.ServiceEventType{backends.ServiceSnapshot, backends.ServiceAdded, backends.ServiceUpdated, backends.ServiceRemoved}, types, "events: %+v", evs)
}

func (s discoverySuite) watchCancelCloses(t *testing.T) {
	d, _ := s.fresh(t)
	register(t, d, svcInfo("q", "q-1"), 0)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := d.Watch(ctx, "q")
	if err != nil {
		cancel()
	}
	require.NoError(t, err)
	w := recordEvents(t, ch, cancel)
	w.waitFor(t, opTimeout, "snapshot", func(evs []backends.ServiceEvent) bool { return len(evs) > 0 })
	cancel()
	w.waitClosed(t, opTimeout, "watch after cancel")
	// The discovery is still usable.
	assert.Equal(t, []string{"q-1"}, serviceIDs(discover(t, d, "q")))
}

func (s discoverySuite) keepaliveOutlivesTTL(t *testing.T) {
	d, ns := s.fresh(t)
	a := svcInfo("kv", "kv-1")
	register(t, d, a, expiryTTL)
	obs, _ := s.newDiscovery(t, ns)
	w := watchServices(t, obs, "kv")
	waitView(t, w, opTimeout, "snapshot", viewOf(a))

	// Three TTLs later the instance must still be there: keep-alive works.
	require.Never(t, func() bool {
		list, err := obs.Discover(ctxFor(t, opTimeout), "kv")
		return err != nil || len(list) != 1
	}, 3*expiryTTL, 100*time.Millisecond, "a kept-alive instance disappeared")
	assert.False(t, hasServiceEvent(w.all(), "kv-1", backends.ServiceRemoved), "watcher saw a removal: %+v", w.all())
}

func (s discoverySuite) ttlExpiry(t *testing.T) {
	ns := uniqueNamespace()
	dying, crash := s.newDiscovery(t, ns)
	require.NotNil(t, crash, "the discovery factory returns no Crash")
	survivor, _ := s.newDiscovery(t, ns)

	a := svcInfo("worker", "worker-dies")
	b := svcInfo("worker", "worker-lives")
	register(t, dying, a, expiryTTL)
	register(t, survivor, b, expiryTTL)

	w := watchServices(t, survivor, "worker")
	waitView(t, w, opTimeout, "snapshot", viewOf(a, b))

	crashed := time.Now()
	crash()
	evs := w.waitFor(t, expiryWait, "removed event for the crashed instance", func(evs []backends.ServiceEvent) bool {
		return hasServiceEvent(evs, "worker-dies", backends.ServiceRemoved)
	})
	t.Logf("removed %v after the crash (ttl %v)", time.Since(crashed).Round(time.Millisecond), expiryTTL)
	i := slices.IndexFunc(evs, func(ev backends.ServiceEvent) bool { return ev.Type == backends.ServiceRemoved })
	assert.Equal(t, "worker", evs[i].Service.Name)
	assert.Equal(t, []string{"worker-lives"}, serviceIDs(discover(t, survivor, "worker")), "only the live instance is discovered")
	assert.False(t, hasServiceEvent(evs, "worker-lives", backends.ServiceRemoved), "the kept-alive instance was removed")
}

func (s discoverySuite) closeReleases(t *testing.T) {
	ns := uniqueNamespace()
	d, _ := s.newDiscovery(t, ns)
	obs, _ := s.newDiscovery(t, ns)

	register(t, d, svcInfo("job", "job-1"), time.Minute)
	require.NoError(t, d.Close())
	// Far sooner than the one-minute TTL: Close deregisters, best-effort.
	require.Eventually(t, func() bool {
		list, err := obs.Discover(ctxFor(t, opTimeout), "job")
		return err == nil && len(list) == 0
	}, 5*time.Second, tick, "the registration outlived Close")

	assert.ErrorIs(t, d.Register(ctxFor(t, opTimeout), svcInfo("job", "job-2"), 0), backends.ErrClosed, "register after close")
	assert.NoError(t, d.Close(), "close is idempotent")
}

// ---- fault cases ----

// stopServer stops the target's server and returns a function that starts it
// again (at most once); the test's cleanup also starts it, so a failing
// case never leaves the server down.
func stopServer(t *testing.T, srv Server) func() {
	t.Helper()
	var once sync.Once
	start := func() { once.Do(srv.Start) }
	srv.Stop()
	t.Cleanup(start)
	return start
}

// waitHealthy polls check until it succeeds (bounded by 30s) and reports a
// failure without stopping the test, so it is safe in a cleanup.
func waitHealthy(t *testing.T, what string, check func(ctx context.Context) error) bool {
	t.Helper()
	var last error
	deadline := time.Now().Add(30 * time.Second)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: backend not healthy again within 30s: %v", what, last)
			return false
		}
		<-ticker.C
	}
}

// retry runs op (each attempt bounded by 2s) until it returns nil.
func retry(t *testing.T, d time.Duration, what string, op func(ctx context.Context) error) {
	t.Helper()
	var last error
	ok := assert.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		last = op(ctx)
		return last == nil
	}, d, 100*time.Millisecond)
	if !ok {
		t.Fatalf("%s: still failing after %v: %v", what, d, last)
	}
}

func (s discoverySuite) server(t *testing.T) Server {
	t.Helper()
	require.NotNil(t, s.target.Server, "conformance: %s has no Server for fault cases", s.target.Name)
	return s.target.Server
}

// ensureHealthyAfter registers a cleanup that waits for the backend to be
// healthy again through a fresh discovery.
func (s discoverySuite) ensureHealthyAfter(t *testing.T, d backends.ServiceDiscovery) {
	t.Cleanup(func() {
		waitHealthy(t, "after "+t.Name(), d.HealthCheck)
	})
}

// watchAfterHistoryTrim: trimming the change history under a live watcher
// must not make it miss what happens next, and a new watcher still gets a
// correct snapshot.
func (s discoverySuite) watchAfterHistoryTrim(t *testing.T) {
	srv := s.server(t)
	d, ns := s.fresh(t)
	a, b := svcInfo("trim", "trim-a"), svcInfo("trim", "trim-b")
	register(t, d, a, 0)
	obs, _ := s.newDiscovery(t, ns)
	w := watchServices(t, obs, "trim")
	waitView(t, w, opTimeout, "snapshot", viewOf(a))

	srv.ForceGap(t)
	register(t, d, b, 0)
	require.NoError(t, d.Deregister(ctxFor(t, opTimeout), "trim-a"))
	evs := waitView(t, w, opTimeout, "view after the trim", viewOf(b))
	assert.True(t, hasServiceEvent(evs, "trim-b", backends.ServiceAdded), "added after trim: %+v", evs)
	assert.True(t, hasServiceEvent(evs, "trim-a", backends.ServiceRemoved), "removed after trim: %+v", evs)

	w2 := watchServices(t, obs, "trim")
	waitView(t, w2, opTimeout, "new watcher's snapshot", viewOf(b))
}

// watchSurvivesRestart: a watcher running across a server restart converges
// to the true instance set and sees every change made after the restart.
// Redis comes back empty: the registrations must heal themselves.
func (s discoverySuite) watchSurvivesRestart(t *testing.T) {
	srv := s.server(t)
	ns := uniqueNamespace()
	d, _ := s.newDiscovery(t, ns)
	obs, _ := s.newDiscovery(t, ns)
	s.ensureHealthyAfter(t, obs)

	a := svcInfo("rs", "rs-a")
	a.Metadata = map[string]string{"gen": "1"}
	register(t, d, a, 3*time.Second)
	w := watchServices(t, obs, "rs")
	waitView(t, w, opTimeout, "snapshot", viewOf(a))

	start := stopServer(t, srv)
	start()
	require.True(t, waitHealthy(t, "restart", d.HealthCheck))
	mark := len(w.all())

	// Changes after the restart; retried because the clients may still be
	// reconnecting.
	b := svcInfo("rs", "rs-b")
	retry(t, 30*time.Second, "register rs-b", func(ctx context.Context) error { return d.Register(ctx, b, 3*time.Second) })
	a2 := a
	a2.Metadata = map[string]string{"gen": "2"}
	retry(t, 30*time.Second, "update rs-a", func(ctx context.Context) error { return d.Register(ctx, a2, 3*time.Second) })

	evs := waitView(t, w, 30*time.Second, "watcher view after the restart", viewOf(a2, b))
	after := evs[mark:]
	assert.True(t, hasServiceEvent(after, "rs-b", backends.ServiceAdded, backends.ServiceUpdated), "rs-b registration after restart not seen: %+v", after)
	assert.True(t, slices.ContainsFunc(after, func(ev backends.ServiceEvent) bool {
		return ev.Service.ID == "rs-a" && ev.Service.Metadata["gen"] == "2" &&
			(ev.Type == backends.ServiceAdded || ev.Type == backends.ServiceUpdated)
	}), "rs-a update after restart not seen: %+v", after)

	retry(t, 30*time.Second, "deregister rs-b", func(ctx context.Context) error {
		err := d.Deregister(ctx, "rs-b")
		if errors.Is(err, backends.ErrNotFound) {
			return nil // an earlier attempt went through
		}
		return err
	})
	evs = waitView(t, w, 30*time.Second, "watcher view after deregister", viewOf(a2))
	assert.True(t, hasServiceEvent(evs[mark:], "rs-b", backends.ServiceRemoved), "rs-b removal not seen: %+v", evs[mark:])
	assert.Equal(t, []backends.ServiceInfo{normService(a2)}, discover(t, obs, "rs"))
}

// selfHealingAfterEmptyRestart: the server loses every key; the registration
// comes back by itself and the loss and the restoration are reported.
func (s discoverySuite) selfHealingAfterEmptyRestart(t *testing.T) {
	srv := s.server(t)
	ns := uniqueNamespace()
	var (
		mu     sync.Mutex
		states []backends.RegistrationEvent
	)
	d, _ := s.newDiscovery(t, ns, func(o *backends.DiscoveryOptions) {
		o.OnRegistration = func(ev backends.RegistrationEvent) {
			mu.Lock()
			states = append(states, ev)
			mu.Unlock()
		}
		o.RetryMin = 50 * time.Millisecond
		o.RetryMax = time.Second
	})
	obs, _ := s.newDiscovery(t, ns)
	s.ensureHealthyAfter(t, obs)

	a := svcInfo("heal", "heal-a")
	register(t, d, a, expiryTTL)
	require.Equal(t, []string{"heal-a"}, serviceIDs(discover(t, obs, "heal")))

	srv.RestartEmpty()
	require.True(t, waitHealthy(t, "empty restart", obs.HealthCheck))

	require.Eventually(t, func() bool {
		list, err := obs.Discover(ctxFor(t, opTimeout), "heal")
		return err == nil && slices.Equal(serviceIDs(list), []string{"heal-a"})
	}, 30*time.Second, 100*time.Millisecond, "the registration did not heal after the server lost its data")
	assert.Equal(t, []backends.ServiceInfo{normService(a)}, discover(t, obs, "heal"), "restored with the same info")

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		lost := slices.IndexFunc(states, func(ev backends.RegistrationEvent) bool { return ev.State == backends.RegistrationLost })
		restored := slices.IndexFunc(states, func(ev backends.RegistrationEvent) bool { return ev.State == backends.RegistrationRestored })
		return lost >= 0 && restored > lost
	}, 30*time.Second, tick, "OnRegistration did not report lost then restored")
	mu.Lock()
	for _, ev := range states {
		assert.Equal(t, "heal-a", ev.ServiceID)
		assert.Equal(t, "heal", ev.ServiceName)
	}
	mu.Unlock()

	// The healed registration is a normal one: it can be deregistered.
	retry(t, 10*time.Second, "deregister healed", func(ctx context.Context) error { return d.Deregister(ctx, "heal-a") })
	assert.Empty(t, discover(t, obs, "heal"))
}
