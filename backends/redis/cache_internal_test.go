package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func kitCache(t testing.TB, c *Connector, ns backends.Namespace, name string) *cacheStore {
	t.Helper()
	cache, err := newCacheStore(c, backends.CacheOptions{Namespace: ns, Name: name, MaxValueSize: 1024})
	require.NoError(t, err)
	return cache
}

func TestCacheBasics(t *testing.T) {
	_, c := kitRedis(t)
	ctx := t.Context()
	cache := kitCache(t, c, kitNS(t, "dev"), "users")

	_, err := cache.Get(ctx, "missing")
	require.ErrorIs(t, err, backends.ErrNotFound)

	require.NoError(t, cache.Set(ctx, "a/b", []byte("1"), 0))
	v, err := cache.Get(ctx, "a/b")
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)
	ok, err := cache.Exists(ctx, "a/b")
	require.NoError(t, err)
	assert.True(t, ok)
	// The key lives where the layout says.
	assert.EqualValues(t, 1, c.Client().Exists(ctx, kitNS(t, "dev").Key("cache", "users", "a/b")).Val())

	require.NoError(t, cache.Delete(ctx, "a/b"))
	require.NoError(t, cache.Delete(ctx, "a/b"), "deleting a missing key is fine")
	ok, err = cache.Exists(ctx, "a/b")
	require.NoError(t, err)
	assert.False(t, ok)

	// Millisecond TTLs are honoured (PX, not whole seconds).
	require.NoError(t, cache.Set(ctx, "short", []byte("x"), 1500*time.Microsecond+100*time.Millisecond))
	pttl := c.Client().PTTL(ctx, kitNS(t, "dev").Key("cache", "users", "short")).Val()
	assert.InDelta(t, 102, pttl.Milliseconds(), 5)
	require.Eventually(t, func() bool {
		_, err := cache.Get(ctx, "short")
		return err != nil
	}, 2*time.Second, 5*time.Millisecond)

	require.NoError(t, cache.SetMany(ctx, []backends.CacheItem{
		{Key: "m1", Value: []byte("v1")}, {Key: "m2", Value: []byte("v2"), TTL: time.Minute},
	}))
	got, err := cache.GetMany(ctx, []string{"m1", "m2", "m3"})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"m1": []byte("v1"), "m2": []byte("v2")}, got)
	got, err = cache.GetMany(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestCacheValidation(t *testing.T) {
	_, c := kitRedis(t)
	ctx := t.Context()
	cache := kitCache(t, c, kitNS(t, "dev"), "v")
	bad := []error{
		cache.Set(ctx, "", []byte("x"), 0),
		cache.Set(ctx, "a\x00b", []byte("x"), 0),
		cache.Set(ctx, strings.Repeat("k", backends.MaxKeyLen+1), []byte("x"), 0),
		cache.Set(ctx, "k", make([]byte, 1025), 0),
		cache.Set(ctx, "k", []byte("x"), -time.Second),
		cache.Delete(ctx, ""),
		cache.SetMany(ctx, []backends.CacheItem{{Key: "ok", Value: []byte("1")}, {Key: ""}}),
	}
	_, err := cache.Get(ctx, "")
	bad = append(bad, err)
	_, err = cache.Exists(ctx, "")
	bad = append(bad, err)
	_, err = cache.GetMany(ctx, []string{"ok", ""})
	bad = append(bad, err)
	for i, err := range bad {
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "case %d", i)
	}
	// A failed SetMany wrote nothing.
	ok, err := cache.Exists(ctx, "ok")
	require.NoError(t, err)
	assert.False(t, ok)

	for _, opts := range []backends.CacheOptions{
		{Name: "x"}, // no env
		{Namespace: backends.Namespace{Env: "dev"}, Name: "a/b"},
		{Namespace: backends.Namespace{Env: "dev"}, Name: "x", MaxValueSize: -1},
	} {
		_, err := newCacheStore(c, opts)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "%+v", opts)
	}
	_, err = newCacheStore(nil, backends.CacheOptions{Namespace: backends.Namespace{Env: "dev"}, Name: "x"})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// TestCacheClearIsolation: names full of glob characters clear only
// themselves, and one environment never touches another.
func TestCacheClearIsolation(t *testing.T) {
	_, c := kitRedis(t)
	kitClearIsolation(t, c)
}

func kitClearIsolation(t *testing.T, c *Connector) {
	ctx := t.Context()
	names := []string{"a*", "ab", "a", "a?", "a[b]", "a\\", "a-z", "[^a]"}
	dev := map[string]*cacheStore{}
	for _, n := range names {
		dev[n] = kitCache(t, c, kitNS(t, "dev"), n)
	}
	prod := kitCache(t, c, kitNS(t, "prod"), "a*")

	// Enough keys to need several SCAN/UNLINK batches.
	const perCache = 1200
	for _, n := range names {
		items := make([]backends.CacheItem, perCache)
		for i := range items {
			items[i] = backends.CacheItem{Key: fmt.Sprintf("k%d", i), Value: []byte(n)}
		}
		require.NoError(t, dev[n].SetMany(ctx, items))
	}
	require.NoError(t, prod.Set(ctx, "k1", []byte("prod"), 0))

	require.NoError(t, dev["a*"].Clear(ctx))
	got, err := dev["a*"].GetMany(ctx, []string{"k0", "k1", "k1199"})
	require.NoError(t, err)
	assert.Empty(t, got, "a* cleared")
	for _, n := range names[1:] {
		v, err := dev[n].Get(ctx, "k1199")
		require.NoError(t, err, "cache %q must survive Clear of a*", n)
		assert.Equal(t, []byte(n), v)
	}
	v, err := prod.Get(ctx, "k1")
	require.NoError(t, err, "prod untouched")
	assert.Equal(t, []byte("prod"), v)

	require.NoError(t, dev["[^a]"].Clear(ctx))
	ok, err := dev["[^a]"].Exists(ctx, "k5")
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = dev["a"].Exists(ctx, "k5")
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, dev["a*"].Clear(ctx), "clearing an empty cache is fine")
}

func TestCacheDoBatch(t *testing.T) {
	_, c := kitRedis(t)
	kitDoBatch(t, c)
}

func kitDoBatch(t *testing.T, c *Connector) {
	ctx := t.Context()
	cache := kitCache(t, c, kitNS(t, "dev"), "batch")
	require.NoError(t, cache.Set(ctx, "present", []byte("p"), 0))
	require.NoError(t, cache.Set(ctx, "doomed", []byte("d"), 0))

	ops := []backends.CacheOp{
		{Kind: backends.CacheOpSet, Key: "new", Value: []byte("n"), TTL: time.Minute},
		{Kind: backends.CacheOpGet, Key: "present"},
		{Kind: backends.CacheOpGet, Key: "absent"},
		{Kind: backends.CacheOpGet, Key: ""}, // invalid: fails alone
		{Kind: backends.CacheOpExists, Key: "present"},
		{Kind: backends.CacheOpExists, Key: "absent"},
		{Kind: backends.CacheOpDelete, Key: "doomed"},
		{Kind: backends.CacheOpSet, Key: "big", Value: make([]byte, 2048)},   // invalid
		{Kind: backends.CacheOpSet, Key: "neg", Value: []byte("x"), TTL: -1}, // invalid
		{Kind: backends.CacheOpKind(99), Key: "x"},                           // invalid
		{Kind: backends.CacheOpGet, Key: "new"},                              // sees the Set above
	}
	res := cache.DoBatch(ctx, ops)
	require.Len(t, res, len(ops))
	assert.NoError(t, res[0].Err)
	assert.Equal(t, backends.CacheResult{Value: []byte("p"), Found: true}, res[1])
	assert.Equal(t, backends.CacheResult{}, res[2], "missing key: Found false, no error")
	assert.ErrorIs(t, res[3].Err, backends.ErrInvalidArgument)
	assert.Equal(t, backends.CacheResult{Found: true}, res[4])
	assert.Equal(t, backends.CacheResult{}, res[5])
	assert.NoError(t, res[6].Err)
	for _, i := range []int{7, 8, 9} {
		assert.ErrorIs(t, res[i].Err, backends.ErrInvalidArgument, "op %d", i)
	}
	assert.Equal(t, backends.CacheResult{Value: []byte("n"), Found: true}, res[10])

	_, err := cache.Get(ctx, "doomed")
	assert.ErrorIs(t, err, backends.ErrNotFound)
	_, err = cache.Get(ctx, "neg")
	assert.ErrorIs(t, err, backends.ErrNotFound, "invalid op was not sent")

	assert.Empty(t, cache.DoBatch(ctx, nil))
}

func TestCacheConnectorStates(t *testing.T) {
	r, _ := kitRedis(t)
	c, err := NewConnector(Config{URL: r.URL()}, nil)
	require.NoError(t, err)
	cache := kitCache(t, c, kitNS(t, "dev"), "states")
	ctx := t.Context()

	_, err = cache.Get(ctx, "k")
	assert.ErrorIs(t, err, backends.ErrUnavailable, "not connected yet")
	res := cache.DoBatch(ctx, []backends.CacheOp{{Kind: backends.CacheOpGet, Key: "k"}, {Kind: backends.CacheOpGet}})
	assert.ErrorIs(t, res[0].Err, backends.ErrUnavailable)
	assert.ErrorIs(t, res[1].Err, backends.ErrInvalidArgument)

	require.NoError(t, c.Connect(ctx))
	require.NoError(t, cache.Set(ctx, "k", []byte("v"), 0))

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = cache.Get(canceled, "k")
	assert.ErrorIs(t, err, context.Canceled)

	r.Stop()
	start := time.Now()
	_, err = cache.Get(ctx, "k")
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.ErrorIs(t, cache.Clear(ctx), backends.ErrUnavailable)
	r.Start()

	require.NoError(t, c.Disconnect(ctx))
	_, err = cache.Get(ctx, "k")
	assert.ErrorIs(t, err, backends.ErrClosed)
	assert.ErrorIs(t, cache.Clear(ctx), backends.ErrClosed)
}

// TestCacheCluster runs the multi-key paths against a three-master Redis
// Cluster: pipelines spanning slots and Clear over every master.
func TestCacheCluster(t *testing.T) {
	c := kitConnect(t, Config{Addrs: kitCluster(t)})
	t.Run("clear isolation", func(t *testing.T) { kitClearIsolation(t, c) })
	t.Run("batch", func(t *testing.T) { kitDoBatch(t, c) })
}
