package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// RunCache runs the cache cases against target.NewCache. Every case uses its
// own environment, so all of them run in parallel.
func RunCache(t *testing.T, target Target) {
	t.Helper()
	require.NotNil(t, target.NewCache, "conformance: %s has no cache factory", target.Name)
	s := cacheSuite{target: target}
	runCases(t, []testCase{
		{"set-get", true, s.setGet},
		{"get-missing", true, s.getMissing},
		{"ttl-expiry", true, s.ttlExpiry},
		{"overwrite", true, s.overwrite},
		{"overwrite-replaces-ttl", true, s.overwriteReplacesTTL},
		{"delete", true, s.delete},
		{"exists", true, s.exists},
		{"clear-scoped", true, s.clearScoped},
		{"env-isolation", true, s.envIsolation},
		{"get-many-partial", true, s.getManyPartial},
		{"binary-values", true, s.binaryValues},
		{"max-value-size", true, s.maxValueSize},
		{"invalid-args", true, s.invalidArgs},
		{"concurrent-writers", true, s.concurrentWriters},
	})
}

type cacheSuite struct{ target Target }

// newCache builds a cache named name in ns.
func (s cacheSuite) newCache(t *testing.T, ns backends.Namespace, name string) backends.Cache {
	t.Helper()
	return s.target.NewCache(t, backends.CacheOptions{Namespace: ns, Name: name})
}

// fresh builds a cache in an environment of its own.
func (s cacheSuite) fresh(t *testing.T) backends.Cache {
	t.Helper()
	return s.newCache(t, uniqueNamespace(), "c")
}

// requireValue checks that key holds want.
func requireValue(t *testing.T, c backends.Cache, key string, want []byte) {
	t.Helper()
	got, err := c.Get(ctxFor(t, opTimeout), key)
	require.NoError(t, err, "get %q", key)
	require.Equal(t, want, got, "value of %q", key)
}

// requireMissing checks that key is absent, through Get and Exists.
func requireMissing(t *testing.T, c backends.Cache, key string) {
	t.Helper()
	ctx := ctxFor(t, opTimeout)
	_, err := c.Get(ctx, key)
	require.ErrorIs(t, err, backends.ErrNotFound, "get %q", key)
	ok, err := c.Exists(ctx, key)
	require.NoError(t, err, "exists %q", key)
	require.False(t, ok, "exists %q", key)
}

func (s cacheSuite) setGet(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	// Keys are the last segment of the layout: '/', glob characters, non-ASCII
	// and the longest allowed key are ordinary keys.
	keys := []string{"k", "a/b/c", "k*?[x]\\", "ключ", strings.Repeat("x", backends.MaxKeyLen)}
	for i, k := range keys {
		require.NoError(t, c.Set(ctx, k, fmt.Appendf(nil, "value-%d", i), 0), "set %q", k)
	}
	for i, k := range keys {
		got, err := c.Get(ctx, k)
		if assert.NoError(t, err, "get %q", k) {
			assert.Equal(t, fmt.Appendf(nil, "value-%d", i), got, "value of %q", k)
		}
	}
}

func (s cacheSuite) getMissing(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	_, err := c.Get(ctx, "never-set")
	assert.ErrorIs(t, err, backends.ErrNotFound)

	require.NoError(t, c.Set(ctx, "present", []byte("v"), 0))
	_, err = c.Get(ctx, "presen") // a prefix of an existing key is still missing
	assert.ErrorIs(t, err, backends.ErrNotFound)
	_, err = c.Get(ctx, "present-not")
	assert.ErrorIs(t, err, backends.ErrNotFound)
}

func (s cacheSuite) ttlExpiry(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, expiryWait+opTimeout)
	require.NoError(t, c.Set(ctx, "short", []byte("v"), expiryTTL))
	require.NoError(t, c.Set(ctx, "forever", []byte("w"), 0))
	requireValue(t, c, "short", []byte("v"))

	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, "short")
		return errors.Is(err, backends.ErrNotFound)
	}, expiryWait, tick, "a %v entry never expired", expiryTTL)
	requireMissing(t, c, "short")
	got, err := c.GetMany(ctx, []string{"short", "forever"})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"forever": []byte("w")}, got, "an expired key must not come back from GetMany")
	requireValue(t, c, "forever", []byte("w"))
}

func (s cacheSuite) overwrite(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	require.NoError(t, c.Set(ctx, "k", []byte("a much longer first value"), 0))
	require.NoError(t, c.Set(ctx, "k", []byte("short"), 0))
	requireValue(t, c, "k", []byte("short"))
	require.NoError(t, c.SetMany(ctx, []backends.CacheItem{{Key: "k", Value: []byte("batch")}}))
	requireValue(t, c, "k", []byte("batch"))
}

// overwriteReplacesTTL: a Set replaces the TTL along with the value, in
// both directions.
func (s cacheSuite) overwriteReplacesTTL(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, expiryWait+opTimeout)
	require.NoError(t, c.Set(ctx, "was-short", []byte("a"), expiryTTL))
	require.NoError(t, c.Set(ctx, "was-short", []byte("b"), 0))
	require.NoError(t, c.Set(ctx, "was-forever", []byte("c"), 0))
	require.NoError(t, c.Set(ctx, "was-forever", []byte("d"), expiryTTL))
	// The marker, set last, expires no earlier than anything above would.
	require.NoError(t, c.Set(ctx, "marker", []byte("m"), expiryTTL))

	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, "was-forever")
		return errors.Is(err, backends.ErrNotFound)
	}, expiryWait, tick, "an entry overwritten with a TTL never expired")
	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, "marker")
		return errors.Is(err, backends.ErrNotFound)
	}, expiryWait, tick, "the marker never expired")
	requireValue(t, c, "was-short", []byte("b"))
}

func (s cacheSuite) delete(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	require.NoError(t, c.Set(ctx, "k", []byte("v"), 0))
	require.NoError(t, c.Set(ctx, "other", []byte("o"), 0))
	require.NoError(t, c.Delete(ctx, "k"))
	requireMissing(t, c, "k")
	requireValue(t, c, "other", []byte("o"))
	assert.NoError(t, c.Delete(ctx, "k"), "deleting a missing key is not an error")
	assert.NoError(t, c.Delete(ctx, "never-set"), "deleting a missing key is not an error")
	require.NoError(t, c.Set(ctx, "k", []byte("again"), 0))
	requireValue(t, c, "k", []byte("again"))
}

func (s cacheSuite) exists(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	ok, err := c.Exists(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "before set")
	require.NoError(t, c.Set(ctx, "k", []byte("v"), 0))
	ok, err = c.Exists(ctx, "k")
	require.NoError(t, err)
	assert.True(t, ok, "after set")
	require.NoError(t, c.Delete(ctx, "k"))
	ok, err = c.Exists(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "after delete")
}

// clearScoped: Clear removes its own namespace only — not the caches whose
// names its glob characters would match if they were not escaped, not a
// cache whose name extends its own, not the same cache in another env.
func (s cacheSuite) clearScoped(t *testing.T) {
	ns := uniqueNamespace()
	other := uniqueNamespace()
	ctx := ctxFor(t, opTimeout)
	const name = `c*[ab]?\`
	target := s.newCache(t, ns, name)
	victims := map[string]backends.Cache{
		"glob match":     s.newCache(t, ns, `cQa!\`), // what `c*[ab]?\` matches as a pattern
		"longer name":    s.newCache(t, ns, name+"x"),
		"shorter name":   s.newCache(t, ns, "c"),
		"other env":      s.newCache(t, other, name),
		"literal star":   s.newCache(t, ns, "*"),
		"question marks": s.newCache(t, ns, `c??a?\`),
	}
	keys := []string{"k", "k*", "a/b", "[x]"}
	for _, k := range keys {
		require.NoError(t, target.Set(ctx, k, []byte("mine"), 0))
		for what, v := range victims {
			require.NoError(t, v.Set(ctx, k, []byte(what), 0))
		}
	}

	require.NoError(t, target.Clear(ctx))
	for _, k := range keys {
		requireMissing(t, target, k)
		for what, v := range victims {
			got, err := v.Get(ctx, k)
			if assert.NoError(t, err, "%s: key %q removed by another cache's Clear", what, k) {
				assert.Equal(t, []byte(what), got)
			}
		}
	}

	// A cleared cache stays usable, and clearing an empty one is fine.
	require.NoError(t, target.Set(ctx, "k", []byte("after"), 0))
	requireValue(t, target, "k", []byte("after"))
	require.NoError(t, target.Clear(ctx))
	assert.NoError(t, target.Clear(ctx))
}

// envIsolation: the same cache name in two environments (and under two
// roots) are different caches.
func (s cacheSuite) envIsolation(t *testing.T) {
	ctx := ctxFor(t, opTimeout)
	a := uniqueNamespace()
	b := uniqueNamespace()
	altRoot := backends.Namespace{Root: "baton-alt", Env: a.Env}
	ca := s.newCache(t, a, "shared")
	cb := s.newCache(t, b, "shared")
	cr := s.newCache(t, altRoot, "shared")

	require.NoError(t, ca.Set(ctx, "k", []byte("from a"), 0))
	requireMissing(t, cb, "k")
	requireMissing(t, cr, "k")

	require.NoError(t, cb.Set(ctx, "k", []byte("from b"), 0))
	require.NoError(t, cr.Set(ctx, "k", []byte("from alt root"), 0))
	requireValue(t, ca, "k", []byte("from a"))
	requireValue(t, cb, "k", []byte("from b"))
	requireValue(t, cr, "k", []byte("from alt root"))

	require.NoError(t, cb.Clear(ctx))
	require.NoError(t, cb.Delete(ctx, "k"))
	requireValue(t, ca, "k", []byte("from a"))
	requireValue(t, cr, "k", []byte("from alt root"))
}

func (s cacheSuite) getManyPartial(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	require.NoError(t, c.SetMany(ctx, []backends.CacheItem{
		{Key: "a", Value: []byte("1")},
		{Key: "b", Value: []byte("2"), TTL: expiryTTL * 1000},
		{Key: "c/d", Value: []byte("3")},
	}))
	got, err := c.GetMany(ctx, []string{"a", "missing-1", "b", "c/d", "missing-2"})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c/d": []byte("3")}, got)

	got, err = c.GetMany(ctx, []string{"missing-1", "missing-2"})
	require.NoError(t, err)
	assert.Empty(t, got, "no key exists")

	got, err = c.GetMany(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, got, "no key asked")

	require.NoError(t, c.SetMany(ctx, nil), "an empty batch is a no-op")
}

// binaryValues: values are bytes, not strings: NUL, every byte value,
// invalid UTF-8 and the empty value survive unchanged.
func (s cacheSuite) binaryValues(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	every := make([]byte, 512)
	for i := range every {
		every[i] = byte(i)
	}
	values := map[string][]byte{
		"nul":          {0},
		"nuls":         {0, 0, 0, 0},
		"inner-nul":    []byte("a\x00b\x00"),
		"every-byte":   every,
		"invalid-utf8": {0xff, 0xfe, 0xc3, 0x28},
		"empty":        {},
	}
	for k, v := range values {
		require.NoError(t, c.Set(ctx, k, v, 0), "set %q", k)
	}
	for k, v := range values {
		got, err := c.Get(ctx, k)
		if assert.NoError(t, err, "get %q", k) {
			assert.True(t, bytes.Equal(v, got), "value of %q: got %x, want %x", k, got, v)
		}
	}
	ok, err := c.Exists(ctx, "empty")
	require.NoError(t, err)
	assert.True(t, ok, "an empty value is a value")

	var items []backends.CacheItem
	var keys []string
	for k, v := range values {
		items = append(items, backends.CacheItem{Key: "batch-" + k, Value: v})
		keys = append(keys, "batch-"+k)
	}
	require.NoError(t, c.SetMany(ctx, items))
	got, err := c.GetMany(ctx, keys)
	require.NoError(t, err)
	assert.Len(t, got, len(values))
	for k, v := range values {
		assert.True(t, bytes.Equal(v, got["batch-"+k]), "batch value of %q: got %x, want %x", k, got["batch-"+k], v)
	}
}

func (s cacheSuite) maxValueSize(t *testing.T) {
	ctx := ctxFor(t, opTimeout)
	const limit = 1024
	c := s.target.NewCache(t, backends.CacheOptions{Namespace: uniqueNamespace(), Name: "small", MaxValueSize: limit})
	require.NoError(t, c.Set(ctx, "fits", make([]byte, limit), 0), "a value of exactly the maximum fits")
	requireValue(t, c, "fits", make([]byte, limit))

	err := c.Set(ctx, "too-big", make([]byte, limit+1), 0)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	requireMissing(t, c, "too-big")

	// A batch with one oversized value is refused before anything is written.
	err = c.SetMany(ctx, []backends.CacheItem{
		{Key: "batch-ok", Value: []byte("small")},
		{Key: "batch-big", Value: make([]byte, limit+1)},
	})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	requireMissing(t, c, "batch-big")
	requireMissing(t, c, "batch-ok")

	// The default maximum is DefaultMaxValueSize, and that much fits.
	d := s.fresh(t)
	big := bytes.Repeat([]byte{0xab}, backends.DefaultMaxValueSize)
	require.NoError(t, d.Set(ctx, "max", big, 0), "a value of DefaultMaxValueSize bytes fits by default")
	requireValue(t, d, "max", big)
	err = d.Set(ctx, "over", append(big, 0), 0)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	requireMissing(t, d, "over")
}

func (s cacheSuite) invalidArgs(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, opTimeout)
	bad := map[string]string{
		"empty":    "",
		"nul":      "a\x00b",
		"too long": strings.Repeat("k", backends.MaxKeyLen+1),
	}
	isInvalid := func(err error, what string) {
		t.Helper()
		var iae *backends.InvalidArgumentError
		if assert.ErrorIs(t, err, backends.ErrInvalidArgument, what) {
			assert.ErrorAs(t, err, &iae, what)
		}
	}
	for what, k := range bad {
		_, err := c.Get(ctx, k)
		isInvalid(err, "get, "+what+" key")
		isInvalid(c.Set(ctx, k, []byte("v"), 0), "set, "+what+" key")
		isInvalid(c.Delete(ctx, k), "delete, "+what+" key")
		_, err = c.Exists(ctx, k)
		isInvalid(err, "exists, "+what+" key")
		_, err = c.GetMany(ctx, []string{"ok", k})
		isInvalid(err, "get many, "+what+" key")
		isInvalid(c.SetMany(ctx, []backends.CacheItem{{Key: k, Value: []byte("v")}}), "set many, "+what+" key")
	}
	isInvalid(c.Set(ctx, "k", []byte("v"), -1), "set, negative ttl")
	isInvalid(c.SetMany(ctx, []backends.CacheItem{{Key: "k", Value: []byte("v"), TTL: -expiryTTL}}), "set many, negative ttl")
	isInvalid(c.Set(ctx, "k", []byte("v"), time.Nanosecond), "set, ttl below the minimum")
	isInvalid(c.Set(ctx, "k", []byte("v"), backends.MinCacheTTL-1), "set, ttl just below the minimum")
	isInvalid(c.SetMany(ctx, []backends.CacheItem{{Key: "k", Value: []byte("v"), TTL: time.Nanosecond}}), "set many, ttl below the minimum")
	requireMissing(t, c, "k")
	requireMissing(t, c, "ok")
}

// concurrentWriters: 100 writers racing on one key leave exactly one of the
// written values, never a mix; their own keys hold their own values.
func (s cacheSuite) concurrentWriters(t *testing.T) {
	c := s.fresh(t)
	ctx := ctxFor(t, 4*opTimeout)
	const writers, rounds = 100, 5
	value := func(w, r int) []byte {
		// Lengths differ per writer, so a torn or mixed value is visible.
		return bytes.Repeat([]byte{byte(w), byte(r)}, 50+w*7)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				errs <- c.Set(ctx, "shared", value(w, r), 0)
				errs <- c.Set(ctx, fmt.Sprintf("own-%d", w), value(w, r), 0)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	got, err := c.Get(ctx, "shared")
	require.NoError(t, err)
	require.NotEmpty(t, got)
	w, r := int(got[0]), int(got[1])
	require.Less(t, w, writers)
	require.Less(t, r, rounds)
	assert.Equal(t, value(w, r), got, "the shared key holds a value no writer wrote")

	keys := make([]string, writers)
	for w := range writers {
		keys[w] = fmt.Sprintf("own-%d", w)
	}
	all, err := c.GetMany(ctx, keys)
	require.NoError(t, err)
	for w := range writers {
		assert.Equal(t, value(w, rounds-1), all[keys[w]], "writer %d's last value", w)
	}
}
