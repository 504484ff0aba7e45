package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func (s configSuite) setGetDelete(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	requireConfigMissing(t, cc, "db/host")

	setKey(t, cc, "db/host", "127.0.0.1")
	requireConfigValue(t, cc, "db/host", "127.0.0.1")
	it := getItem(t, cc, "db/host")
	assert.Equal(t, "db/host", it.Key, "item key is the user key")
	assert.Equal(t, "127.0.0.1", it.Value)
	assert.NotZero(t, it.Version)

	setKey(t, cc, "db/host", "127.0.0.2")
	requireConfigValue(t, cc, "db/host", "127.0.0.2")
	setKey(t, cc, "empty", "")
	requireConfigValue(t, cc, "empty", "")

	require.NoError(t, cc.Delete(ctx, "db/host"))
	requireConfigMissing(t, cc, "db/host")
	assert.NoError(t, cc.Delete(ctx, "db/host"), "deleting a missing key is not an error")
	assert.NoError(t, cc.Delete(ctx, "never-set"))
	requireConfigValue(t, cc, "empty", "")
}

func (s configSuite) versionsIncrease(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	var prev uint64
	step := func(what string, v uint64) {
		t.Helper()
		require.Greater(t, v, prev, "%s: version must exceed the previous write's", what)
		prev = v
	}
	step("set a", setItem(t, cc, "a", "1").Version)
	step("set a again", setItem(t, cc, "a", "2").Version)
	step("set b", setItem(t, cc, "b", "1").Version)
	it, err := cc.CompareAndSet(ctx, "b", "2", prev)
	require.NoError(t, err)
	step("compare-and-set b", it.Version)
	assert.Equal(t, it, getItem(t, cc, "b"), "compare-and-set returns the stored item")
	delKey(t, cc, "b")
	// The delete is a write too: the next version is above it as well, so
	// above the compare-and-set's.
	step("set a after a delete", setItem(t, cc, "a", "3").Version)
	same := setItem(t, cc, "a", "3")
	step("rewrite the same value", same.Version)
}

func (s configSuite) compareAndSet(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	v1, err := cc.CompareAndSet(ctx, "k", "a", 0)
	require.NoError(t, err, "create with expected 0")
	assert.Equal(t, "a", v1.Value)
	assert.Equal(t, "k", v1.Key)
	assert.NotZero(t, v1.Version)

	_, err = cc.CompareAndSet(ctx, "k", "b", 0)
	require.ErrorIs(t, err, backends.ErrConflict, "expected 0 but the key exists")
	requireConfigValue(t, cc, "k", "a")

	v2, err := cc.CompareAndSet(ctx, "k", "b", v1.Version)
	require.NoError(t, err, "matching version")
	assert.Greater(t, v2.Version, v1.Version)
	requireConfigValue(t, cc, "k", "b")

	_, err = cc.CompareAndSet(ctx, "k", "c", v1.Version)
	require.ErrorIs(t, err, backends.ErrConflict, "stale version")
	requireConfigValue(t, cc, "k", "b")

	_, err = cc.CompareAndSet(ctx, "missing", "x", 12345)
	require.ErrorIs(t, err, backends.ErrConflict, "non-zero version on a missing key")
	requireConfigMissing(t, cc, "missing")

	delKey(t, cc, "k")
	_, err = cc.CompareAndSet(ctx, "k", "d", v2.Version)
	require.ErrorIs(t, err, backends.ErrConflict, "the deleted key's last version")
	_, err = cc.CompareAndSet(ctx, "k", "d", 0)
	require.NoError(t, err, "recreate a deleted key with expected 0")

	// Racing writers with the same expectation: exactly one wins.
	base := getItem(t, cc, "k")
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := cc.CompareAndSet(ctxFor(t, opTimeout), "k", fmt.Sprint("w", i), base.Version)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		if err == nil {
			wins++
			continue
		}
		assert.ErrorIs(t, err, backends.ErrConflict)
	}
	assert.Equal(t, 1, wins, "exactly one of %d racing compare-and-sets wins", n)
}

func (s configSuite) listByPrefix(t *testing.T) {
	cc := s.fresh(t)
	for k, v := range map[string]string{
		"app/a": "1", "app/b": "2", "app/sub/c": "3", "apple": "4", "other/x": "5",
	} {
		setKey(t, cc, k, v)
	}
	assert.Equal(t, map[string]string{"app/a": "1", "app/b": "2", "app/sub/c": "3"}, listKeys(t, cc, "app/"))
	assert.Equal(t, map[string]string{"app/a": "1", "app/b": "2", "app/sub/c": "3", "apple": "4"}, listKeys(t, cc, "app"))
	assert.Len(t, listKeys(t, cc, ""), 5, "the empty prefix lists the whole namespace")
	assert.Empty(t, listKeys(t, cc, "nothing/"), "no match is an empty result, not an error")

	items, err := cc.ListItems(ctxFor(t, opTimeout), "app/")
	require.NoError(t, err)
	keys := make([]string, 0, len(items))
	for _, it := range items {
		keys = append(keys, it.Key)
		assert.Equal(t, getItem(t, cc, it.Key), it, "listed item equals the item read alone")
	}
	assert.Equal(t, []string{"app/a", "app/b", "app/sub/c"}, keys, "ListItems is sorted by key")

	delKey(t, cc, "app/b")
	assert.Equal(t, map[string]string{"app/a": "1", "app/sub/c": "3"}, listKeys(t, cc, "app/"))
}

func (s configSuite) specialKeys(t *testing.T) {
	cc := s.fresh(t)
	// Glob characters matter to Redis patterns; '/' and unicode to layouts.
	keys := []string{"a", "a*", "a?", "a[1]", `a\b`, "a^-", "b", "with space", "日本/設定", "x/y/z", "dots.and:colons", "%", strings.Repeat("k", backends.MaxKeyLen)}
	for _, k := range keys {
		setKey(t, cc, k, "v:"+k)
	}
	for _, k := range keys {
		requireConfigValue(t, cc, k, "v:"+k)
	}
	assert.Equal(t, map[string]string{"a*": "v:a*"}, listKeys(t, cc, "a*"), "a prefix with '*' matches literally")
	assert.Equal(t, map[string]string{"a[1]": "v:a[1]"}, listKeys(t, cc, "a["), "a prefix with '[' matches literally")
	assert.Equal(t, map[string]string{"a?": "v:a?"}, listKeys(t, cc, "a?"))
	assert.Len(t, listKeys(t, cc, "a"), 6)
	assert.Equal(t, map[string]string{"日本/設定": "v:日本/設定"}, listKeys(t, cc, "日本/"))
	assert.Len(t, listKeys(t, cc, ""), len(keys))
}

func (s configSuite) invalidArgs(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	setKey(t, cc, "ok", "v")
	badKeys := map[string]string{
		"empty":    "",
		"nul":      "a\x00b",
		"too long": strings.Repeat("k", backends.MaxKeyLen+1),
	}
	isInvalid := func(err error, what string) {
		t.Helper()
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, what)
		var ia *backends.InvalidArgumentError
		assert.True(t, errors.As(err, &ia), "%s: want an *InvalidArgumentError, got %T %v", what, err, err)
	}
	for what, k := range badKeys {
		_, err := cc.GetItem(ctx, k)
		isInvalid(err, "get item "+what)
		isInvalid(cc.Set(ctx, k, "v"), "set "+what)
		isInvalid(cc.Delete(ctx, k), "delete "+what)
		_, err = cc.CompareAndSet(ctx, k, "v", 0)
		isInvalid(err, "compare-and-set "+what)
		_, err = cc.History(ctx, k, 0)
		isInvalid(err, "history "+what)
		_, err = cc.Rollback(ctx, k, 1)
		isInvalid(err, "rollback "+what)
		wctx, cancel := context.WithCancel(ctx)
		ch, err := cc.WatchWith(wctx, k, backends.WatchOptions{})
		isInvalid(err, "watch "+what)
		assert.Nil(t, ch, "a rejected watch returns no channel")
		cancel()
	}
	for what, p := range map[string]string{"nul": "a\x00", "too long": strings.Repeat("p", backends.MaxKeyLen+1)} {
		_, err := cc.ListItems(ctx, p)
		isInvalid(err, "list items prefix "+what)
		wctx, cancel := context.WithCancel(ctx)
		_, err = cc.WatchWith(wctx, p, backends.WatchOptions{Prefix: true})
		isInvalid(err, "watch prefix "+what)
		cancel()
	}
	requireConfigValue(t, cc, "ok", "v")
	assert.Len(t, listKeys(t, cc, ""), 1, "nothing invalid was stored")

	// Bad options are refused by the factory's Validate.
	_, err := backends.ConfigOptions{Namespace: backends.Namespace{Env: ""}}.Validate()
	isInvalid(err, "options without env")
	_, err = backends.ConfigOptions{Namespace: uniqueNamespace(), Name: "a/b"}.Validate()
	isInvalid(err, "config name with '/'")
}

func (s configSuite) maxValueSize(t *testing.T) {
	cc := s.newConfig(t, backends.ConfigOptions{Namespace: uniqueNamespace(), MaxValueSize: 16})
	ctx := ctxFor(t, opTimeout)
	setKey(t, cc, "k", strings.Repeat("x", 16))
	assert.ErrorIs(t, cc.Set(ctx, "k", strings.Repeat("y", 17)), backends.ErrInvalidArgument, "set over the limit")
	_, err := cc.CompareAndSet(ctx, "k", strings.Repeat("y", 17), getItem(t, cc, "k").Version)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "compare-and-set over the limit")
	requireConfigValue(t, cc, "k", strings.Repeat("x", 16))
}

// watchKey covers a plain watch (WatchWith, zero options): only future changes of exactly one key. A
// plain watch has no start version, so the case first writes a priming value
// until the watch reports it, which proves the watch is established.
func (s configSuite) watchKey(t *testing.T) {
	cc := s.fresh(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := cc.WatchWith(ctx, "w/k", backends.WatchOptions{})
	if err != nil {
		cancel()
	}
	require.NoError(t, err)
	w := recordEvents(t, ch, cancel)
	n := 0
	w.waitFor(t, opTimeout, "priming put", func(evs []backends.ConfigEvent) bool {
		if len(evs) > 0 {
			return true
		}
		n++
		_ = cc.Set(ctxFor(t, opTimeout), "w/k", fmt.Sprint("prime-", n))
		return false
	})
	// Let the priming writes drain: the last one is the floor.
	last := fmt.Sprint("prime-", n)
	start := len(untilPut(t, w, "w/k", last))
	floor := w.all()[start-1].Item.Version

	setKey(t, cc, "w/k", "1")
	setKey(t, cc, "w/other", "x")
	setKey(t, cc, "w/k2", "y") // shares the prefix, not the key
	setKey(t, cc, "w/k", "2")
	delKey(t, cc, "w/k")
	setKey(t, cc, "w/k", "3") // marker
	evs := untilPut(t, w, "w/k", "3")[start:]
	assert.Equal(t, []ev{put("w/k", "1"), put("w/k", "2"), del("w/k"), put("w/k", "3")}, compact(evs), "exactly the key's changes, in order")
	requireIncreasing(t, evs, floor)
	assert.Empty(t, evs[2].Item.Value, "a delete event has no value")

	cancel()
	w.waitClosed(t, opTimeout, "watch after cancel")
}

func (s configSuite) watchPrefix(t *testing.T) {
	cc := s.fresh(t)
	from := setItem(t, cc, "base", "x").Version
	w, _ := watchConfig(t, cc, "p/", backends.WatchOptions{Prefix: true, FromVersion: from})
	setKey(t, cc, "p/a", "1")
	setKey(t, cc, "px", "no")
	setKey(t, cc, "p/b/c", "2")
	setKey(t, cc, "q/a", "no")
	delKey(t, cc, "p/a")
	setKey(t, cc, "p/z", "end")
	evs := untilPut(t, w, "p/z", "end")
	assert.Equal(t, []ev{put("p/a", "1"), put("p/b/c", "2"), del("p/a"), put("p/z", "end")}, compact(evs), "every change under the prefix and nothing else")
	requireIncreasing(t, evs, from)
}

// watchResumeFromVersion: a watcher that reconnects with the last version it
// saw gets exactly the changes it missed, in order, then live changes.
func (s configSuite) watchResumeFromVersion(t *testing.T) {
	cc := s.fresh(t)
	v0 := setItem(t, cc, "base", "x").Version

	w1, cancel1 := watchConfig(t, cc, "r/", backends.WatchOptions{Prefix: true, FromVersion: v0})
	setKey(t, cc, "r/a", "1")
	setKey(t, cc, "r/b", "2")
	seen := untilPut(t, w1, "r/b", "2")
	assert.Equal(t, []ev{put("r/a", "1"), put("r/b", "2")}, compact(seen))
	last := seen[len(seen)-1].Item.Version
	cancel1()
	w1.waitClosed(t, opTimeout, "first watch after cancel")

	// Changes while the watcher is away.
	setKey(t, cc, "r/a", "3")
	delKey(t, cc, "r/b")
	setKey(t, cc, "r/c", "4")
	setKey(t, cc, "s/x", "outside")

	w2, _ := watchConfig(t, cc, "r/", backends.WatchOptions{Prefix: true, FromVersion: last})
	setKey(t, cc, "r/d", "live")
	evs := untilPut(t, w2, "r/d", "live")
	assert.Equal(t, []ev{put("r/a", "3"), del("r/b"), put("r/c", "4"), put("r/d", "live")}, compact(evs),
		"exactly the missed changes in order, then live ones, without a resync")
	requireIncreasing(t, evs, last)

	// Resuming a single key.
	w3, _ := watchConfig(t, cc, "r/a", backends.WatchOptions{FromVersion: v0})
	setKey(t, cc, "r/a", "5")
	evs = untilPut(t, w3, "r/a", "5")
	assert.Equal(t, []ev{put("r/a", "1"), put("r/a", "3"), put("r/a", "5")}, compact(evs))
	requireIncreasing(t, evs, v0)

	// Resuming at the newest version means only future changes.
	now := getItem(t, cc, "r/a").Version // the newest write
	w4, _ := watchConfig(t, cc, "r/", backends.WatchOptions{Prefix: true, FromVersion: now})
	setKey(t, cc, "r/e", "future")
	assert.Equal(t, []ev{put("r/e", "future")}, compact(untilPut(t, w4, "r/e", "future")))
}

func (s configSuite) historyAndRollback(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	i1 := setItem(t, cc, "h", "v1")
	i2 := setItem(t, cc, "h", "v2")
	other := setItem(t, cc, "other", "o")
	i3 := setItem(t, cc, "h", "v3")

	hist, err := cc.History(ctx, "h", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{i3, i2, i1}, hist, "newest first, the current value included")
	hist, err = cc.History(ctx, "h", 2)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{i3, i2}, hist, "limit")

	r, err := cc.Rollback(ctx, "h", i1.Version)
	require.NoError(t, err)
	assert.Equal(t, "h", r.Key)
	assert.Equal(t, "v1", r.Value, "rolled back to the old value")
	assert.Greater(t, r.Version, i3.Version, "a rollback is a new write")
	assert.Equal(t, r, getItem(t, cc, "h"))
	hist, err = cc.History(ctx, "h", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{r, i3, i2, i1}, hist)

	_, err = cc.Rollback(ctx, "h", other.Version)
	assert.ErrorIs(t, err, backends.ErrNotFound, "a version of another key")
	_, err = cc.Rollback(ctx, "h", r.Version+1000)
	assert.ErrorIs(t, err, backends.ErrNotFound, "a version that never existed")
	_, err = cc.Rollback(ctx, "never-set", 1)
	assert.ErrorIs(t, err, backends.ErrNotFound, "rollback of a key without history")
	requireConfigValue(t, cc, "h", "v1")
}

func (s configSuite) historyLimit(t *testing.T) {
	cc := s.newConfig(t, backends.ConfigOptions{Namespace: uniqueNamespace(), HistoryLimit: 3})
	ctx := ctxFor(t, opTimeout)
	var items []backends.ConfigItem
	for i := 1; i <= 6; i++ {
		items = append(items, setItem(t, cc, "h", fmt.Sprint("v", i)))
	}
	hist, err := cc.History(ctx, "h", 0)
	require.NoError(t, err)
	assert.Equal(t, []backends.ConfigItem{items[5], items[4], items[3]}, hist, "only HistoryLimit versions are kept")
	_, err = cc.Rollback(ctx, "h", items[0].Version)
	assert.ErrorIs(t, err, backends.ErrNotFound, "a version no longer kept")
	r, err := cc.Rollback(ctx, "h", items[3].Version)
	require.NoError(t, err)
	assert.Equal(t, "v4", r.Value)
}

// historyNeverSet: a key that was never set has an empty history — no
// versions, and no error — on every implementation.
func (s configSuite) historyNeverSet(t *testing.T) {
	cc := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	setKey(t, cc, "other", "o") // the namespace is not empty
	for _, limit := range []int{0, 1} {
		hist, err := cc.History(ctx, "never-set", limit)
		require.NoError(t, err, "history of a key never set, limit %d", limit)
		assert.Empty(t, hist, "limit %d", limit)
	}
	_, err := cc.GetItem(ctx, "never-set")
	assert.ErrorIs(t, err, backends.ErrNotFound, "GetItem is what tells a key does not exist")
}

func (s configSuite) envIsolation(t *testing.T) {
	ns1, ns2 := uniqueNamespace(), uniqueNamespace()
	c1 := s.newConfig(t, backends.ConfigOptions{Namespace: ns1, Name: "app"})
	c2 := s.newConfig(t, backends.ConfigOptions{Namespace: ns2, Name: "app"})
	// Same env, a name that extends the first: must not overlap either.
	c3 := s.newConfig(t, backends.ConfigOptions{Namespace: ns1, Name: "appx"})

	setKey(t, c1, "k", "env1")
	requireConfigMissing(t, c2, "k")
	requireConfigMissing(t, c3, "k")

	from := setItem(t, c2, "k", "env2").Version
	w2, _ := watchConfig(t, c2, "", backends.WatchOptions{Prefix: true, FromVersion: from})
	setKey(t, c1, "k", "env1-again")
	setKey(t, c3, "k", "appx")
	setKey(t, c2, "marker", "m")
	assert.Equal(t, []ev{put("marker", "m")}, compact(untilPut(t, w2, "marker", "m")), "the watcher saw another namespace's writes")

	requireConfigValue(t, c1, "k", "env1-again")
	requireConfigValue(t, c2, "k", "env2")
	requireConfigValue(t, c3, "k", "appx")
	assert.Equal(t, map[string]string{"k": "env1-again"}, listKeys(t, c1, ""))
	assert.Equal(t, map[string]string{"k": "env2", "marker": "m"}, listKeys(t, c2, ""))

	delKey(t, c1, "k")
	requireConfigValue(t, c2, "k", "env2")
	requireConfigValue(t, c3, "k", "appx")
}
