package etcd_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/integration/harness"
)

func cfgNew(t *testing.T, conn *etcd.Connector, opts backends.ConfigOptions) backends.ConfigCenter {
	t.Helper()
	if opts.Namespace.Env == "" {
		opts.Namespace.Env = "test"
	}
	c, err := etcd.NewConfigCenter(conn, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func cfgWatch(t *testing.T, c backends.ConfigCenter, key string, opts backends.WatchOptions) <-chan backends.ConfigEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	ch, err := c.WatchWith(ctx, key, opts)
	require.NoError(t, err)
	return ch
}

func cfgNext(t *testing.T, ch <-chan backends.ConfigEvent) backends.ConfigEvent {
	t.Helper()
	timer := time.NewTimer(discWait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed unexpectedly")
		return ev
	case <-timer.C:
		require.FailNow(t, "no config event within the bound")
	}
	return backends.ConfigEvent{}
}

func cfgQuiet(t *testing.T, ch <-chan backends.ConfigEvent, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev := <-ch:
		assert.Failf(t, "unexpected config event", "%+v", ev)
	case <-timer.C:
	}
}

// cfgEv renders an event for comparison: "put k=v", "delete k", "resync".
func cfgEv(ev backends.ConfigEvent) string {
	switch ev.Type {
	case backends.ConfigPut:
		return "put " + ev.Item.Key + "=" + ev.Item.Value
	case backends.ConfigDelete:
		return "delete " + ev.Item.Key
	}
	return ev.Type.String()
}

func cfgCollect(t *testing.T, ch <-chan backends.ConfigEvent, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, cfgEv(cfgNext(t, ch)))
	}
	return out
}

func cfgSet(t *testing.T, c backends.ConfigCenter, key, value string) backends.ConfigItem {
	t.Helper()
	require.NoError(t, c.Set(t.Context(), key, value))
	it, err := c.GetItem(t.Context(), key)
	require.NoError(t, err)
	return it
}

func TestConfigSetGetVersions(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	c := cfgNew(t, conn, backends.ConfigOptions{Name: "app", MaxValueSize: 64})
	ctx := t.Context()

	_, err := configValue(ctx, c, "db/url")
	require.ErrorIs(t, err, backends.ErrNotFound)
	a1 := cfgSet(t, c, "db/url", "postgres://a")
	v, err := configValue(ctx, c, "db/url")
	require.NoError(t, err)
	assert.Equal(t, "postgres://a", v)
	b1 := cfgSet(t, c, "db/pool", "10")
	a2 := cfgSet(t, c, "db/url", "postgres://b")
	assert.Less(t, a1.Version, b1.Version)
	assert.Less(t, b1.Version, a2.Version, "versions increase across the namespace")

	// The documented layout; history stays outside the data prefix.
	raw, err := conn.Client().Get(ctx, "baton/test/config/app/db/url")
	require.NoError(t, err)
	require.Len(t, raw.Kvs, 1)
	assert.Equal(t, int64(a2.Version), raw.Kvs[0].ModRevision)

	require.NoError(t, c.Delete(ctx, "db/url"))
	require.NoError(t, c.Delete(ctx, "db/url"), "deleting a missing key is fine")
	_, err = configValue(ctx, c, "db/url")
	require.ErrorIs(t, err, backends.ErrNotFound)

	// Bad input.
	require.ErrorIs(t, c.Set(ctx, "", "x"), backends.ErrInvalidArgument)
	require.ErrorIs(t, c.Set(ctx, "a\x00b", "x"), backends.ErrInvalidArgument)
	require.ErrorIs(t, c.Set(ctx, "big", strings.Repeat("x", 65)), backends.ErrInvalidArgument)
	require.NoError(t, c.Set(ctx, "big", strings.Repeat("x", 64)))
	_, err = c.WatchWith(ctx, "", backends.WatchOptions{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "an exact watch needs a key")
	_, err = etcd.NewConfigCenter(conn, backends.ConfigOptions{Namespace: backends.Namespace{Env: "test"}, Name: "a/b"})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = etcd.NewConfigCenter(nil, backends.ConfigOptions{Namespace: backends.Namespace{Env: "test"}})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	// A caller's cancelled ctx is reported as such.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = configValue(cctx, c, "db/pool")
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, c.Close())
	_, err = configValue(ctx, c, "db/pool")
	require.ErrorIs(t, err, backends.ErrClosed)
	require.NoError(t, c.Close())
}

func TestConfigUnconnected(t *testing.T) {
	conn, err := etcd.NewConnector(etcd.Config{Endpoints: []string{"127.0.0.1:1"}}, nil)
	require.NoError(t, err)
	c := cfgNew(t, conn, backends.ConfigOptions{})
	_, err = configValue(t.Context(), c, "k")
	require.ErrorIs(t, err, backends.ErrUnavailable)
	require.ErrorIs(t, c.Set(t.Context(), "k", "v"), backends.ErrUnavailable)
	_, err = c.WatchWith(t.Context(), "k", backends.WatchOptions{})
	require.ErrorIs(t, err, backends.ErrUnavailable)
}

func TestConfigCompareAndSet(t *testing.T) {
	srv := harness.StartEtcd(t)
	c := cfgNew(t, discConnector(t, srv), backends.ConfigOptions{})
	ctx := t.Context()

	it, err := c.CompareAndSet(ctx, "flag", "on", 0)
	require.NoError(t, err)
	assert.Equal(t, "on", it.Value)
	_, err = c.CompareAndSet(ctx, "flag", "again", 0)
	require.ErrorIs(t, err, backends.ErrConflict, "0 means: must not exist")

	it2, err := c.CompareAndSet(ctx, "flag", "off", it.Version)
	require.NoError(t, err)
	assert.Greater(t, it2.Version, it.Version)
	_, err = c.CompareAndSet(ctx, "flag", "stale", it.Version)
	require.ErrorIs(t, err, backends.ErrConflict)
	got, err := c.GetItem(ctx, "flag")
	require.NoError(t, err)
	assert.Equal(t, it2, got)

	_, err = c.CompareAndSet(ctx, "missing", "x", 12345)
	require.ErrorIs(t, err, backends.ErrConflict)
}

func TestConfigListIsolation(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	c := cfgNew(t, conn, backends.ConfigOptions{Name: "app"})
	cx := cfgNew(t, conn, backends.ConfigOptions{Name: "appx"})
	prod := cfgNew(t, conn, backends.ConfigOptions{Name: "app", Namespace: backends.Namespace{Env: "prod"}})
	ctx := t.Context()
	for _, k := range []string{"system/b", "system/a", "component/cache/ttl", "systemic"} {
		require.NoError(t, c.Set(ctx, k, "v-"+k))
	}
	require.NoError(t, cx.Set(ctx, "system/x", "other name"))
	require.NoError(t, prod.Set(ctx, "system/a", "other env"))

	all, err := configList(ctx, c, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"system/a": "v-system/a", "system/b": "v-system/b",
		"component/cache/ttl": "v-component/cache/ttl", "systemic": "v-systemic",
	}, all, "no other name, env, or history record")
	items, err := c.ListItems(ctx, "system/")
	require.NoError(t, err)
	require.Len(t, items, 2)
	assert.Equal(t, "system/a", items[0].Key)
	assert.Equal(t, "system/b", items[1].Key)
	assert.NotZero(t, items[0].Version)
	empty, err := configList(ctx, c, "nothing/")
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestConfigWatchKeyPrefixAndLatency(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	c := cfgNew(t, conn, backends.ConfigOptions{})
	ctx := t.Context()
	require.NoError(t, c.Set(ctx, "svc/a", "0"))

	key := cfgWatch(t, c, "svc/a", backends.WatchOptions{})
	plain, err := c.WatchWith(ctx, "svc/a", backends.WatchOptions{}) // a plain watch: WatchWith without options
	require.NoError(t, err)
	prefix := cfgWatch(t, c, "svc/", backends.WatchOptions{Prefix: true})
	all := cfgWatch(t, c, "", backends.WatchOptions{Prefix: true})

	require.NoError(t, c.Set(ctx, "svc/a", "1"))
	require.NoError(t, c.Set(ctx, "svc/ab", "2")) // not the key "svc/a"
	require.NoError(t, c.Set(ctx, "other", "3"))
	require.NoError(t, c.Delete(ctx, "svc/a"))

	assert.Equal(t, []string{"put svc/a=1", "delete svc/a"}, cfgCollect(t, key, 2))
	assert.Equal(t, []string{"put svc/a=1", "delete svc/a"}, cfgCollect(t, plain, 2))
	assert.Equal(t, []string{"put svc/a=1", "put svc/ab=2", "delete svc/a"}, cfgCollect(t, prefix, 3))
	assert.Equal(t, []string{"put svc/a=1", "put svc/ab=2", "put other=3", "delete svc/a"}, cfgCollect(t, all, 4))
	cfgQuiet(t, key, 100*time.Millisecond)

	// Versions in events are the items' versions.
	it, err := c.CompareAndSet(ctx, "svc/a", "4", 0)
	require.NoError(t, err)
	ev := cfgNext(t, key)
	assert.Equal(t, backends.ConfigEvent{Type: backends.ConfigPut, Item: it}, ev)

	// Set → watch event latency.
	var lat []time.Duration
	for i := range 20 {
		start := time.Now()
		require.NoError(t, c.Set(ctx, "svc/a", fmt.Sprint(i)))
		ev := cfgNext(t, key)
		lat = append(lat, time.Since(start))
		require.Equal(t, fmt.Sprint(i), ev.Item.Value)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("set → watch event latency over %d samples: p50 %v, max %v", len(lat), lat[len(lat)/2], lat[len(lat)-1])

	// Close ends the watches.
	require.NoError(t, c.Close())
	for range plain {
	}
	_, err = c.WatchWith(ctx, "svc/a", backends.WatchOptions{})
	require.ErrorIs(t, err, backends.ErrClosed)
}

func TestConfigWatchFromVersion(t *testing.T) {
	srv := harness.StartEtcd(t)
	c := cfgNew(t, discConnector(t, srv), backends.ConfigOptions{})
	a1 := cfgSet(t, c, "a", "1")
	cfgSet(t, c, "b", "1")
	cfgSet(t, c, "a", "2")
	require.NoError(t, c.Delete(t.Context(), "b"))

	w := cfgWatch(t, c, "", backends.WatchOptions{Prefix: true, FromVersion: a1.Version})
	assert.Equal(t, []string{"put b=1", "put a=2", "delete b"}, cfgCollect(t, w, 3))
	k := cfgWatch(t, c, "a", backends.WatchOptions{FromVersion: a1.Version})
	assert.Equal(t, []string{"put a=2"}, cfgCollect(t, k, 1))
	cfgSet(t, c, "a", "3")
	assert.Equal(t, []string{"put a=3"}, cfgCollect(t, w, 1))
	assert.Equal(t, []string{"put a=3"}, cfgCollect(t, k, 1))
}

// TestConfigWatchCompactedResync: the versions after FromVersion are
// compacted; the watch sends ConfigResync and the exact difference to Known.
func TestConfigWatchCompactedResync(t *testing.T) {
	srv := harness.StartEtcd(t)
	c := cfgNew(t, discConnector(t, srv), backends.ConfigOptions{})
	ctx := t.Context()
	a := cfgSet(t, c, "p/a", "1")
	b := cfgSet(t, c, "p/b", "1")
	cc := cfgSet(t, c, "p/c", "1")
	known := map[string]uint64{"p/a": a.Version, "p/b": b.Version, "p/c": cc.Version, "q/outside": 1}

	cfgSet(t, c, "p/b", "2")
	require.NoError(t, c.Delete(ctx, "p/c"))
	cfgSet(t, c, "p/d", "1")
	cfgSet(t, c, "p/e", "1")
	require.NoError(t, c.Delete(ctx, "p/e"))
	srv.CompactNow(t)

	w := cfgWatch(t, c, "p/", backends.WatchOptions{Prefix: true, FromVersion: cc.Version, Known: known})
	ev := cfgNext(t, w)
	require.Equal(t, backends.ConfigResync, ev.Type)
	assert.NotZero(t, ev.Item.Version)
	assert.Equal(t, []string{"put p/b=2", "put p/d=1", "delete p/c"}, cfgCollect(t, w, 3))
	cfgQuiet(t, w, 200*time.Millisecond)
	cfgSet(t, c, "p/a", "2")
	assert.Equal(t, []string{"put p/a=2"}, cfgCollect(t, w, 1), "then live changes")
}

// TestConfigWatchResumesAfterReconnect: changes made while the watcher's
// connection is down arrive in order once it is back; compaction meanwhile
// turns them into a resync with the difference against what it has seen.
func TestConfigWatchResumesAfterReconnect(t *testing.T) {
	srv := harness.StartEtcd(t)
	c := cfgNew(t, discConnector(t, srv), backends.ConfigOptions{})
	obsConn := discConnector(t, srv)
	obs := cfgNew(t, obsConn, backends.ConfigOptions{})
	ctx := t.Context()
	cfgSet(t, c, "x", "0")
	w := cfgWatch(t, obs, "", backends.WatchOptions{Prefix: true})

	require.NoError(t, obsConn.Disconnect(ctx))
	cfgSet(t, c, "x", "1")
	cfgSet(t, c, "y", "1")
	require.NoError(t, c.Delete(ctx, "x"))
	require.NoError(t, obsConn.Connect(ctx))
	assert.Equal(t, []string{"put x=1", "put y=1", "delete x"}, cfgCollect(t, w, 3))

	require.NoError(t, obsConn.Disconnect(ctx))
	cfgSet(t, c, "y", "2")
	cfgSet(t, c, "z", "1")
	cfgSet(t, c, "x", "2")
	require.NoError(t, c.Delete(ctx, "x"))
	srv.CompactNow(t)
	require.NoError(t, obsConn.Connect(ctx))
	assert.Equal(t, []string{"resync", "put y=2", "put z=1"}, cfgCollect(t, w, 3))
	cfgQuiet(t, w, 200*time.Millisecond)
}

// TestConfigWatchSurvivesKillAndWipe: a kill with data kept loses nothing;
// an empty restart is a resync with the difference.
func TestConfigWatchSurvivesKillAndWipe(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	c := cfgNew(t, discConnector(t, srv), backends.ConfigOptions{})
	ctx := t.Context()
	set := func(k, v string) {
		require.Eventually(t, func() bool {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return c.Set(sctx, k, v) == nil
		}, discWait, 50*time.Millisecond)
	}
	for i := range 20 {
		set("k/old", fmt.Sprint(i))
	}
	w := cfgWatch(t, c, "k/", backends.WatchOptions{Prefix: true})

	srv.Stop()
	srv.Start()
	set("k/a", "1")
	set("k/b", "1")
	assert.Equal(t, []string{"put k/a=1", "put k/b=1"}, cfgCollect(t, w, 2))

	srv.Wipe()
	srv.Start()
	set("k/new", "1")
	ev := cfgNext(t, w)
	require.Equal(t, backends.ConfigResync, ev.Type, "%+v", ev)
	got := cfgCollect(t, w, 4)
	// The new key may come in the difference or, if written after the
	// resync, as a live event right after it.
	assert.ElementsMatch(t, []string{"put k/new=1", "delete k/a", "delete k/b", "delete k/old"}, got)
	cfgQuiet(t, w, 200*time.Millisecond)
	set("k/after", "1")
	assert.Equal(t, []string{"put k/after=1"}, cfgCollect(t, w, 1))
}

func TestConfigHistoryRollback(t *testing.T) {
	srv := harness.StartEtcd(t)
	conn := discConnector(t, srv)
	c := cfgNew(t, conn, backends.ConfigOptions{HistoryLimit: 3})
	ctx := t.Context()

	h, err := c.History(ctx, "k", 0)
	require.NoError(t, err, "a key never set has an empty history")
	require.Empty(t, h)
	var items []backends.ConfigItem
	for i := range 5 {
		items = append(items, cfgSet(t, c, "k", fmt.Sprint("v", i)))
	}
	cfgSet(t, c, "k/sub", "not k's history")

	h, err = c.History(ctx, "k", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{items[4], items[3], items[2]}, h, "newest first, the current included, trimmed to 3")
	h, err = c.History(ctx, "k", 2)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{items[4], items[3]}, h)
	raw, err := conn.Client().Get(ctx, "baton/test/config-history/default/", clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Len(t, raw.Kvs, 4, "3 records of k, 1 of k/sub")

	// Rollback writes the old value as a new version.
	back, err := c.Rollback(ctx, "k", items[2].Version)
	require.NoError(t, err)
	assert.Equal(t, "v2", back.Value)
	assert.Greater(t, back.Version, items[4].Version)
	v, err := configValue(ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "v2", v)
	_, err = c.Rollback(ctx, "k", items[0].Version)
	require.ErrorIs(t, err, backends.ErrNotFound, "trimmed away")

	// History outlives compaction and a delete; rollback undoes the delete.
	srv.CompactNow(t)
	require.NoError(t, c.Delete(ctx, "k"))
	h, err = c.History(ctx, "k", 0)
	require.NoError(t, err)
	require.Len(t, h, 3)
	assert.Equal(t, back, h[0])
	_, err = c.Rollback(ctx, "k", items[4].Version)
	require.NoError(t, err)
	v, err = configValue(ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "v4", v)

	// A value too large to repeat in the same request still gets history.
	big := cfgNew(t, conn, backends.ConfigOptions{Name: "big", MaxValueSize: 1 << 20})
	large := strings.Repeat("x", 700<<10)
	l1 := cfgSet(t, big, "blob", large)
	l2 := cfgSet(t, big, "blob", "small")
	h, err = big.History(ctx, "blob", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{l2, l1}, h)
	back, err = big.Rollback(ctx, "blob", l1.Version)
	require.NoError(t, err)
	assert.Len(t, back.Value, 700<<10)
}

// configValue is GetItem's value: the reads of these tests want the string.
func configValue(ctx context.Context, cc backends.ConfigCenter, key string) (string, error) {
	it, err := cc.GetItem(ctx, key)
	return it.Value, err
}

// configList is ListItems as a key → value map.
func configList(ctx context.Context, cc backends.ConfigCenter, prefix string) (map[string]string, error) {
	items, err := cc.ListItems(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return backends.ConfigValues(items), nil
}
