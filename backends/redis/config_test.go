package redis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func cfgNew(t *testing.T, conn *Connector, opts backends.ConfigOptions) *configStore {
	t.Helper()
	if opts.Namespace.Env == "" {
		opts.Namespace = kitNS(t, "test")
	}
	c, err := newConfigStore(conn, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func cfgNext(t *testing.T, ch <-chan backends.ConfigEvent) backends.ConfigEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no config event within 10s")
	}
	return backends.ConfigEvent{}
}

func cfgNoEvent(t *testing.T, ch <-chan backends.ConfigEvent, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %v %q=%q@%d", ev.Type, ev.Item.Key, ev.Item.Value, ev.Item.Version)
	case <-time.After(d):
	}
}

// cfgClosed waits until ch is closed, discarding what is still queued.
func cfgClosed(t *testing.T, ch <-chan backends.ConfigEvent) {
	t.Helper()
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
	}, 5*time.Second, 5*time.Millisecond)
}

// cfgExpect checks the next event's type, key and value.
func cfgExpect(t *testing.T, ch <-chan backends.ConfigEvent, typ backends.ConfigEventType, key, value string) backends.ConfigEvent {
	t.Helper()
	ev := cfgNext(t, ch)
	require.Equal(t, typ, ev.Type, "event %+v", ev)
	if typ != backends.ConfigResync {
		assert.Equal(t, key, ev.Item.Key)
		assert.Equal(t, value, ev.Item.Value)
	}
	return ev
}

func TestConfigSetGetVersions(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})

	_, err := configValue(ctx, c, "db/url")
	assert.ErrorIs(t, err, backends.ErrNotFound)
	_, err = c.GetItem(ctx, "db/url")
	assert.ErrorIs(t, err, backends.ErrNotFound)

	require.NoError(t, c.Set(ctx, "db/url", "postgres://a"))
	v, err := configValue(ctx, c, "db/url")
	require.NoError(t, err)
	assert.Equal(t, "postgres://a", v)
	it1, err := c.GetItem(ctx, "db/url")
	require.NoError(t, err)
	assert.NotZero(t, it1.Version)

	require.NoError(t, c.Set(ctx, "db/url", "postgres://b"))
	it2, err := c.GetItem(ctx, "db/url")
	require.NoError(t, err)
	assert.Equal(t, it1.Version+1, it2.Version, "versions are a per-namespace counter")

	// Compare-and-set.
	_, err = c.CompareAndSet(ctx, "db/url", "x", 0)
	assert.ErrorIs(t, err, backends.ErrConflict, "0 = must not exist")
	_, err = c.CompareAndSet(ctx, "db/url", "x", it1.Version)
	assert.ErrorIs(t, err, backends.ErrConflict, "stale version")
	it3, err := c.CompareAndSet(ctx, "db/url", "postgres://c", it2.Version)
	require.NoError(t, err)
	assert.Equal(t, backends.ConfigItem{Key: "db/url", Value: "postgres://c", Version: it2.Version + 1}, it3)
	_, err = c.CompareAndSet(ctx, "new", "n", 5)
	assert.ErrorIs(t, err, backends.ErrConflict, "missing key with a version")
	itNew, err := c.CompareAndSet(ctx, "new", "n", 0)
	require.NoError(t, err)
	assert.Equal(t, it3.Version+1, itNew.Version)

	// Delete bumps the version; deleting a missing key does not.
	require.NoError(t, c.Delete(ctx, "new"))
	_, err = configValue(ctx, c, "new")
	assert.ErrorIs(t, err, backends.ErrNotFound)
	require.NoError(t, c.Delete(ctx, "new"))
	require.NoError(t, c.Delete(ctx, "never"))
	require.NoError(t, c.Set(ctx, "after", "x"))
	after, err := c.GetItem(ctx, "after")
	require.NoError(t, err)
	assert.Equal(t, itNew.Version+2, after.Version, "one version for the delete, none for the no-ops")

	// List and ListItems.
	require.NoError(t, c.Set(ctx, "db/pool", "10"))
	require.NoError(t, c.Set(ctx, "dbx", "y"))
	m, err := configList(ctx, c, "db/")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"db/url": "postgres://c", "db/pool": "10"}, m)
	items, err := c.ListItems(ctx, "")
	require.NoError(t, err)
	keys := make([]string, 0, len(items))
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	assert.Equal(t, []string{"after", "db/pool", "db/url", "dbx"}, keys)
	assert.Equal(t, it3, items[2])
	m, err = configList(ctx, c, "zzz")
	require.NoError(t, err)
	assert.Empty(t, m)

	// Glob characters are plain, binary values round-trip.
	bin := "a\x00b\xff:p:\r\n"
	require.NoError(t, c.Set(ctx, "we*ird[1]", bin))
	v, err = configValue(ctx, c, "we*ird[1]")
	require.NoError(t, err)
	assert.Equal(t, bin, v)
	m, err = configList(ctx, c, "we*")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"we*ird[1]": bin}, m)
	m, err = configList(ctx, c, "we")
	require.NoError(t, err)
	assert.Len(t, m, 1)

	// Namespaces and environments are isolated.
	other := cfgNew(t, conn, backends.ConfigOptions{Name: "other"})
	_, err = configValue(ctx, other, "db/url")
	assert.ErrorIs(t, err, backends.ErrNotFound)
	prod := cfgNew(t, conn, backends.ConfigOptions{Namespace: kitNS(t, "prod")})
	_, err = configValue(ctx, prod, "db/url")
	assert.ErrorIs(t, err, backends.ErrNotFound)
}

func TestConfigInvalidInput(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	_, err := newConfigStore(nil, backends.ConfigOptions{Namespace: backends.Namespace{Env: "test"}})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newConfigStore(conn, backends.ConfigOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newConfigStore(conn, backends.ConfigOptions{Namespace: backends.Namespace{Env: "test"}, Name: "a/b"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = newConfigStore(conn, backends.ConfigOptions{Namespace: backends.Namespace{Env: "test"}, HistoryLimit: -1})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)

	c := cfgNew(t, conn, backends.ConfigOptions{MaxValueSize: 8})
	assert.ErrorIs(t, c.Set(ctx, "", "v"), backends.ErrInvalidArgument)
	assert.ErrorIs(t, c.Set(ctx, "k\x00", "v"), backends.ErrInvalidArgument)
	assert.ErrorIs(t, c.Set(ctx, strings.Repeat("k", backends.MaxKeyLen+1), "v"), backends.ErrInvalidArgument)
	assert.ErrorIs(t, c.Set(ctx, "k", "123456789"), backends.ErrInvalidArgument)
	_, err = c.CompareAndSet(ctx, "k", "123456789", 0)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = configValue(ctx, c, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.ErrorIs(t, c.Delete(ctx, ""), backends.ErrInvalidArgument)
	_, err = configList(ctx, c, "a\x00")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = c.History(ctx, "", 0)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = c.Rollback(ctx, "", 1)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = c.WatchWith(ctx, "", backends.WatchOptions{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "an exact key must not be empty")
	wctx, cancel := context.WithCancel(ctx)
	ch, err := c.WatchWith(wctx, "", backends.WatchOptions{Prefix: true})
	require.NoError(t, err, "an empty prefix is the whole namespace")
	cancel()
	cfgClosed(t, ch)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Set(ctx, "k", "v"), backends.ErrClosed)
	_, err = configValue(ctx, c, "k")
	assert.ErrorIs(t, err, backends.ErrClosed)
	_, err = c.WatchWith(ctx, "k", backends.WatchOptions{})
	assert.ErrorIs(t, err, backends.ErrClosed)
}

func TestConfigUnavailable(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	require.NoError(t, c.Set(ctx, "k", "v"))
	r.Stop()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	assert.ErrorIs(t, c.Set(cctx, "k", "v2"), backends.ErrUnavailable)
	_, err := configValue(cctx, c, "k")
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	_, err = c.WatchWith(cctx, "k", backends.WatchOptions{})
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	_, err = c.WatchWith(cctx, "k", backends.WatchOptions{FromVersion: 1})
	assert.ErrorIs(t, err, backends.ErrUnavailable)

	require.NoError(t, conn.Disconnect(ctx))
	_, err = configValue(ctx, c, "k")
	assert.ErrorIs(t, err, backends.ErrClosed, "disconnected connector")
}

func TestConfigHistoryRollback(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{HistoryLimit: 3})

	h, err := c.History(ctx, "k", 0)
	require.NoError(t, err)
	assert.Empty(t, h)

	var written []backends.ConfigItem
	for i := 1; i <= 4; i++ {
		it, err := c.CompareAndSet(ctx, "k", fmt.Sprintf("v%d", i), lastVersion(written))
		require.NoError(t, err)
		written = append(written, it)
	}
	h, err = c.History(ctx, "k", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{written[3], written[2], written[1]}, h, "newest first, capped at HistoryLimit")
	h, err = c.History(ctx, "k", 2)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{written[3], written[2]}, h)

	rb, err := c.Rollback(ctx, "k", written[1].Version)
	require.NoError(t, err)
	assert.Equal(t, "v2", rb.Value)
	assert.Equal(t, written[3].Version+1, rb.Version, "a rollback is a new write")
	cur, err := c.GetItem(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, rb, cur)

	_, err = c.Rollback(ctx, "k", written[0].Version)
	assert.ErrorIs(t, err, backends.ErrNotFound, "trimmed from history")
	_, err = c.Rollback(ctx, "k", 12345)
	assert.ErrorIs(t, err, backends.ErrNotFound)
	_, err = c.Rollback(ctx, "nokey", 1)
	assert.ErrorIs(t, err, backends.ErrNotFound)

	// A deleted key can be rolled back to a kept value.
	require.NoError(t, c.Delete(ctx, "k"))
	h, err = c.History(ctx, "k", 0)
	require.NoError(t, err)
	require.NotEmpty(t, h)
	assert.Equal(t, rb, h[0], "deletions are not listed")
	rb2, err := c.Rollback(ctx, "k", written[3].Version)
	require.NoError(t, err)
	v, err := configValue(ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "v4", v)
	assert.Greater(t, rb2.Version, rb.Version)
}

func lastVersion(items []backends.ConfigItem) uint64 {
	if len(items) == 0 {
		return 0
	}
	return items[len(items)-1].Version
}

func TestConfigWatchKeyAndPrefix(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	require.NoError(t, c.Set(ctx, "app/a", "before"))

	keyCh, err := c.WatchWith(ctx, "app/a", backends.WatchOptions{})
	require.NoError(t, err)
	prefixCh, err := c.WatchWith(ctx, "app/", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)

	require.NoError(t, c.Set(ctx, "app/a", "1"))
	require.NoError(t, c.Set(ctx, "app/b", "2"))
	require.NoError(t, c.Set(ctx, "other/x", "3"))
	require.NoError(t, c.Set(ctx, "app/ab", "4"))
	require.NoError(t, c.Delete(ctx, "app/a"))
	require.NoError(t, c.Delete(ctx, "app/missing"))

	ev := cfgExpect(t, keyCh, backends.ConfigPut, "app/a", "1")
	put, err := c.GetItem(ctx, "app/b")
	require.NoError(t, err)
	assert.Equal(t, put.Version-1, ev.Item.Version)
	del := cfgExpect(t, keyCh, backends.ConfigDelete, "app/a", "")
	assert.Equal(t, put.Version+3, del.Item.Version, "the delete's own version")
	cfgNoEvent(t, keyCh, 200*time.Millisecond)

	cfgExpect(t, prefixCh, backends.ConfigPut, "app/a", "1")
	cfgExpect(t, prefixCh, backends.ConfigPut, "app/b", "2")
	cfgExpect(t, prefixCh, backends.ConfigPut, "app/ab", "4")
	cfgExpect(t, prefixCh, backends.ConfigDelete, "app/a", "")
	cfgNoEvent(t, prefixCh, 100*time.Millisecond)

	// Latency from Set returning to the event arriving.
	const samples = 20
	lat := make([]time.Duration, 0, samples)
	for i := range samples {
		start := time.Now()
		require.NoError(t, c.Set(ctx, "app/a", fmt.Sprint(i)))
		ev := cfgNext(t, keyCh)
		lat = append(lat, time.Since(start))
		require.Equal(t, fmt.Sprint(i), ev.Item.Value)
	}
	slices.Sort(lat)
	t.Logf("set→watch event latency over %d samples: p50 %v, max %v (includes the set round trip)", samples, lat[samples/2], lat[samples-1])

	// Close ends every watch.
	require.NoError(t, c.Close())
	cfgClosed(t, prefixCh)
	cfgClosed(t, keyCh)
}

func TestConfigWatchFromVersion(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	var its []backends.ConfigItem
	for i, k := range []string{"a", "b", "a", "c"} {
		it, err := c.CompareAndSet(ctx, k, fmt.Sprint(i), cfgCurrent(t, c, k))
		require.NoError(t, err)
		its = append(its, it)
	}
	require.NoError(t, c.Delete(ctx, "b"))

	ch, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true, FromVersion: its[0].Version})
	require.NoError(t, err)
	ev := cfgExpect(t, ch, backends.ConfigPut, "b", "1")
	assert.Equal(t, its[1].Version, ev.Item.Version)
	cfgExpect(t, ch, backends.ConfigPut, "a", "2")
	cfgExpect(t, ch, backends.ConfigPut, "c", "3")
	cfgExpect(t, ch, backends.ConfigDelete, "b", "")
	require.NoError(t, c.Set(ctx, "d", "live"))
	cfgExpect(t, ch, backends.ConfigPut, "d", "live")

	// Resuming at the current version replays nothing.
	cur, err := c.GetItem(ctx, "d")
	require.NoError(t, err)
	ch2, err := c.WatchWith(ctx, "a", backends.WatchOptions{FromVersion: cur.Version})
	require.NoError(t, err)
	cfgNoEvent(t, ch2, 300*time.Millisecond)
	require.NoError(t, c.Set(ctx, "a", "next"))
	cfgExpect(t, ch2, backends.ConfigPut, "a", "next")
}

func cfgCurrent(t *testing.T, c *configStore, key string) uint64 {
	it, err := c.GetItem(t.Context(), key)
	if err != nil {
		require.ErrorIs(t, err, backends.ErrNotFound)
		return 0
	}
	return it.Version
}

func TestConfigWatchTrimmedResync(t *testing.T) {
	_, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	require.NoError(t, c.Set(ctx, "same", "s"))
	require.NoError(t, c.Set(ctx, "changed", "old"))
	require.NoError(t, c.Set(ctx, "gone", "g"))
	known := map[string]uint64{}
	items, err := c.ListItems(ctx, "")
	require.NoError(t, err)
	for _, it := range items {
		known[it.Key] = it.Version
	}
	var from uint64
	for _, v := range known {
		from = max(from, v)
	}

	require.NoError(t, c.Set(ctx, "changed", "new"))
	require.NoError(t, c.Delete(ctx, "gone"))
	require.NoError(t, c.Set(ctx, "added", "a"))
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, c.keys.log, 0).Err())

	ch, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true, FromVersion: from, Known: known})
	require.NoError(t, err)
	rs := cfgExpect(t, ch, backends.ConfigResync, "", "")
	added, err := c.GetItem(ctx, "added")
	require.NoError(t, err)
	assert.Equal(t, added.Version, rs.Item.Version, "resync names the version it brings the watcher to")
	cfgExpect(t, ch, backends.ConfigPut, "added", "a")
	cfgExpect(t, ch, backends.ConfigPut, "changed", "new")
	del := cfgExpect(t, ch, backends.ConfigDelete, "gone", "")
	assert.Equal(t, added.Version, del.Item.Version)
	cfgNoEvent(t, ch, 200*time.Millisecond)
	require.NoError(t, c.Set(ctx, "same", "s2"))
	cfgExpect(t, ch, backends.ConfigPut, "same", "s2")

	// Without Known: keys at or below FromVersion count as known.
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, c.keys.log, 0).Err())
	require.NoError(t, c.Set(ctx, "late", "l"))
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, c.keys.log, 0).Err())
	ch2, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true, FromVersion: from})
	require.NoError(t, err)
	cfgExpect(t, ch2, backends.ConfigResync, "", "")
	for _, want := range []struct{ k, v string }{{"added", "a"}, {"changed", "new"}, {"late", "l"}, {"same", "s2"}} {
		cfgExpect(t, ch2, backends.ConfigPut, want.k, want.v)
	}
	cfgNoEvent(t, ch2, 200*time.Millisecond)
}

func TestConfigRunningWatchGapResync(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	watchConn := kitConnect(t, Config{URL: r.URL()})
	wc := cfgNew(t, watchConn, backends.ConfigOptions{})
	require.NoError(t, c.Set(ctx, "p/a", "1"))
	require.NoError(t, c.Set(ctx, "p/b", "1"))
	ch, err := wc.WatchWith(ctx, "p/", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)

	require.NoError(t, watchConn.Disconnect(ctx))
	require.NoError(t, c.Delete(ctx, "p/a"))
	require.NoError(t, c.Set(ctx, "p/b", "2"))
	require.NoError(t, c.Set(ctx, "p/c", "3"))
	require.NoError(t, c.Set(ctx, "q/ignored", "x"))
	require.NoError(t, conn.Client().XTrimMaxLen(ctx, c.keys.log, 0).Err())
	require.NoError(t, watchConn.Connect(ctx))

	// The first change may still arrive as itself (a read blocked before
	// the disconnect); everything after it comes as the difference.
	ev := cfgNext(t, ch)
	if ev.Type == backends.ConfigDelete {
		assert.Equal(t, "p/a", ev.Item.Key)
		cfgExpect(t, ch, backends.ConfigResync, "", "")
	} else {
		require.Equal(t, backends.ConfigResync, ev.Type)
		cfgExpect(t, ch, backends.ConfigDelete, "p/a", "")
	}
	cfgExpect(t, ch, backends.ConfigPut, "p/b", "2")
	cfgExpect(t, ch, backends.ConfigPut, "p/c", "3")
	cfgNoEvent(t, ch, 200*time.Millisecond)
}

func TestConfigWatchSurvivesRestart(t *testing.T) {
	r, conn := kitRedis(t)
	ctx := t.Context()
	c := cfgNew(t, conn, backends.ConfigOptions{})
	require.NoError(t, c.Set(ctx, "a", "1"))
	before, err := c.GetItem(ctx, "a")
	require.NoError(t, err)
	ch, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true})
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, "b", "1"))
	cfgExpect(t, ch, backends.ConfigPut, "b", "1")

	r.Restart() // empty data
	require.Eventually(t, func() bool { return c.Set(ctx, "c", "after") == nil }, 5*time.Second, 10*time.Millisecond)
	after, err := c.GetItem(ctx, "c")
	require.NoError(t, err)
	assert.Greater(t, after.Version, before.Version, "versions keep increasing across an empty restart")

	// The watcher learns that a and b are gone and that c exists — whether
	// c arrives inside the resync or after it.
	state := map[string]string{"a": "1", "b": "1"}
	resynced := false
	require.Eventually(t, func() bool {
		for {
			select {
			case ev := <-ch:
				switch ev.Type {
				case backends.ConfigResync:
					resynced = true
				case backends.ConfigPut:
					state[ev.Item.Key] = ev.Item.Value
				case backends.ConfigDelete:
					delete(state, ev.Item.Key)
				}
				continue
			default:
			}
			return resynced && maps.Equal(state, map[string]string{"c": "after"})
		}
	}, 10*time.Second, 10*time.Millisecond)

	// A watcher resuming from a version of the lost data resyncs too.
	ch2, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true, FromVersion: before.Version, Known: map[string]uint64{"a": before.Version}})
	require.NoError(t, err)
	cfgExpect(t, ch2, backends.ConfigResync, "", "")
	cfgExpect(t, ch2, backends.ConfigDelete, "a", "")
	cfgExpect(t, ch2, backends.ConfigPut, "c", "after")
	cfgNoEvent(t, ch2, 200*time.Millisecond)

	// While the server is down the watch waits and then carries on.
	r.Stop()
	r.Start()
	require.Eventually(t, func() bool { return c.Set(ctx, "d", "x") == nil }, 5*time.Second, 10*time.Millisecond)
	cfgExpect(t, ch2, backends.ConfigResync, "", "")
	for {
		ev := cfgNext(t, ch2)
		if ev.Type == backends.ConfigPut && ev.Item.Key == "d" {
			break
		}
		require.Equal(t, backends.ConfigDelete, ev.Type, "only deletions of the lost keys before d: %+v", ev)
	}
}

func TestConfigOnCluster(t *testing.T) {
	addrs := kitCluster(t)
	conn := kitConnect(t, Config{Addrs: addrs})
	ctx := t.Context()
	for _, name := range []string{"alpha", "beta", "gamma"} {
		c := cfgNew(t, conn, backends.ConfigOptions{Name: name})
		ch, err := c.WatchWith(ctx, "", backends.WatchOptions{Prefix: true})
		require.NoError(t, err)
		it, err := c.CompareAndSet(ctx, "k", "v", 0)
		require.NoError(t, err)
		cfgExpect(t, ch, backends.ConfigPut, "k", "v")
		_, err = c.Rollback(ctx, "k", it.Version)
		require.NoError(t, err)
		cfgExpect(t, ch, backends.ConfigPut, "k", "v")
		require.NoError(t, c.Delete(ctx, "k"))
		cfgExpect(t, ch, backends.ConfigDelete, "k", "")
		m, err := configList(ctx, c, "")
		require.NoError(t, err)
		assert.Empty(t, m)
		slot := func(key string) int64 {
			s, err := conn.Client().(*goredis.ClusterClient).ClusterKeySlot(ctx, key).Result()
			require.NoError(t, err)
			return s
		}
		for _, key := range []string{c.keys.values, c.keys.versions, c.keys.log, c.keys.historyPrefix + "k"} {
			assert.Equal(t, slot(c.keys.meta), slot(key), key)
		}
	}
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
