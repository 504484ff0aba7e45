package etcd

import (
	"bytes"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestLeaseRules(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{
		{time.Nanosecond, 2}, {time.Second, 2}, {2 * time.Second, 2}, {2*time.Second + 1, 3},
		{2500 * time.Millisecond, 3}, {10 * time.Second, 10}, {time.Hour, 3600},
	} {
		assert.Equal(t, tc.want, leaseSeconds(tc.in), "leaseSeconds(%v)", tc.in)
	}
	base := time.Unix(1000, 0)
	assert.Equal(t, base, bucketOf(base), "an exact second is its own bucket end")
	assert.Equal(t, base.Add(time.Second), bucketOf(base.Add(time.Nanosecond)))
	assert.Equal(t, base.Add(time.Second), bucketOf(base.Add(999*time.Millisecond)))
}

func TestCacheChunks(t *testing.T) {
	var ops []backends.CacheOp
	for i := range 300 {
		k := fmt.Sprintf("k%d", i%40) // every key recurs
		kind := []backends.CacheOpKind{backends.CacheOpSet, backends.CacheOpGet, backends.CacheOpDelete, backends.CacheOpExists}[i%4]
		ops = append(ops, backends.CacheOp{Kind: kind, Key: k})
	}
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	chunks := cacheChunks(ops, idx)
	var flat []int
	for _, ch := range chunks {
		require.LessOrEqual(t, len(ch), maxTxnOps)
		written := map[string]bool{}
		for _, i := range ch {
			require.False(t, written[ops[i].Key], "key %q used after a write in the same txn", ops[i].Key)
			if ops[i].Kind == backends.CacheOpSet || ops[i].Kind == backends.CacheOpDelete {
				written[ops[i].Key] = true
			}
		}
		flat = append(flat, ch...)
	}
	assert.Equal(t, idx, flat, "order preserved, nothing lost")

	// Distinct keys pack into full 128-op chunks.
	ops = ops[:0]
	for i := range 300 {
		ops = append(ops, backends.CacheOp{Kind: backends.CacheOpSet, Key: fmt.Sprintf("u%d", i)})
	}
	chunks = cacheChunks(ops, idx)
	require.Len(t, chunks, 3)
	assert.Len(t, chunks[0], 128)
	assert.Len(t, chunks[2], 300-256)
}

func newTestCache(t *testing.T, conn *Connector) *cacheStore {
	t.Helper()
	c, err := newCacheStore(conn, backends.CacheOptions{Namespace: testNS(), Name: "c"})
	require.NoError(t, err)
	return c
}

func TestCacheBatches(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	conn := testConn(t, srv)

	t.Run("mixed ops with repeated keys, more than 128", func(t *testing.T) {
		c := newTestCache(t, conn)
		ctx := t.Context()
		// Replay a random-looking sequence and compare with a model that
		// applies the ops one by one.
		model := map[string][]byte{}
		var ops []backends.CacheOp
		var want []backends.CacheResult
		for i := range 400 {
			k := fmt.Sprintf("k%d", (i*7)%23)
			switch i % 5 {
			case 0, 3:
				v := []byte(fmt.Sprintf("v%d\x00%d", i, i))
				ops = append(ops, backends.CacheOp{Kind: backends.CacheOpSet, Key: k, Value: v, TTL: time.Duration(i%2) * time.Minute})
				model[k] = v
				want = append(want, backends.CacheResult{})
			case 1:
				ops = append(ops, backends.CacheOp{Kind: backends.CacheOpGet, Key: k})
				v, ok := model[k]
				want = append(want, backends.CacheResult{Value: v, Found: ok})
			case 2:
				ops = append(ops, backends.CacheOp{Kind: backends.CacheOpExists, Key: k})
				_, ok := model[k]
				want = append(want, backends.CacheResult{Found: ok})
			case 4:
				ops = append(ops, backends.CacheOp{Kind: backends.CacheOpDelete, Key: k})
				delete(model, k)
				want = append(want, backends.CacheResult{})
			}
		}
		// Invalid ops fail alone, in place.
		bad := []int{17, 250}
		for _, i := range bad {
			ops = append(ops[:i+1], ops[i:]...)
			ops[i] = backends.CacheOp{Kind: backends.CacheOpGet, Key: ""}
			want = append(want[:i+1], want[i:]...)
			want[i] = backends.CacheResult{}
		}
		ops = append(ops, backends.CacheOp{Kind: backends.CacheOpSet, Key: "neg", TTL: -time.Second},
			backends.CacheOp{Kind: 99, Key: "x"})
		want = append(want, backends.CacheResult{}, backends.CacheResult{})

		got := c.DoBatch(ctx, ops)
		require.Len(t, got, len(ops))
		for i := range ops {
			if ops[i].Key == "" || ops[i].Key == "neg" || ops[i].Kind == 99 {
				require.ErrorIs(t, got[i].Err, backends.ErrInvalidArgument, "op %d", i)
				continue
			}
			require.NoError(t, got[i].Err, "op %d", i)
			assert.Equal(t, want[i].Found, got[i].Found, "op %d %+v", i, ops[i])
			if ops[i].Kind == backends.CacheOpGet && want[i].Found {
				assert.Equal(t, want[i].Value, got[i].Value, "op %d", i)
			}
		}
		// The final state matches the model.
		for k, v := range model {
			g, err := c.Get(ctx, k)
			require.NoError(t, err, k)
			assert.Equal(t, v, g)
		}
		all, err := c.GetMany(ctx, []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10",
			"k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19", "k20", "k21", "k22"})
		require.NoError(t, err)
		assert.Equal(t, model, all)
	})

	t.Run("set many over the txn limit", func(t *testing.T) {
		c := newTestCache(t, conn)
		items := make([]backends.CacheItem, 0, 500)
		keys := make([]string, 0, 500)
		for i := range 500 {
			k := fmt.Sprintf("item/%03d", i)
			keys = append(keys, k)
			items = append(items, backends.CacheItem{Key: k, Value: []byte{byte(i), 0, byte(i >> 8)}, TTL: time.Duration(i%3) * time.Minute})
		}
		items = append(items, backends.CacheItem{Key: "item/000", Value: []byte("last wins")})
		require.NoError(t, c.SetMany(t.Context(), items))
		got, err := c.GetMany(t.Context(), keys)
		require.NoError(t, err)
		require.Len(t, got, 500)
		assert.Equal(t, []byte("last wins"), got["item/000"])
		assert.Equal(t, []byte{7, 0, 0}, got["item/007"])

		// An invalid item fails the whole call before anything is written.
		err = c.SetMany(t.Context(), []backends.CacheItem{{Key: "fresh", Value: []byte("x")}, {Key: ""}})
		require.ErrorIs(t, err, backends.ErrInvalidArgument)
		ok, err := c.Exists(t.Context(), "fresh")
		require.NoError(t, err)
		assert.False(t, ok)
	})
}

func TestCacheValues(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	conn := testConn(t, srv)
	raw := rawClient(t, srv)
	c := newTestCache(t, conn)
	ctx := t.Context()
	header := encodeEntry([]byte("inner"), time.Now().Add(time.Hour).UnixNano())
	for name, v := range map[string][]byte{
		"empty":        {},
		"nul":          {0, 0, 0},
		"binary":       {0xff, 0x00, 0xBA, 0x01, 0x80},
		"looks framed": header, // a value that itself starts like our header
	} {
		require.NoError(t, c.Set(ctx, name, v, 0))
		got, err := c.Get(ctx, name)
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(v, got), "%s: %x != %x", name, v, got)
		assert.NotNil(t, got, name)
	}
	// Bytes written by someone else, without our header, read back verbatim.
	_, err := raw.Put(ctx, c.key("foreign"), "plain")
	require.NoError(t, err)
	got, err := c.Get(ctx, "foreign")
	require.NoError(t, err)
	assert.Equal(t, []byte("plain"), got)
}

// TestCacheDeadlineHidesEntries: an entry is missing for every read from
// its deadline on, even though etcd keeps it until its lease ends.
func TestCacheDeadlineHidesEntries(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	conn := testConn(t, srv)
	raw := rawClient(t, srv)
	c := newTestCache(t, conn)
	ctx := t.Context()

	now := time.Now()
	c.now = func() time.Time { return now }
	require.NoError(t, c.Set(ctx, "a", []byte("1"), time.Hour))
	require.NoError(t, c.Set(ctx, "b", []byte("2"), 0))
	ok, err := c.Exists(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)

	now = now.Add(time.Hour) // exactly the deadline
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, backends.ErrNotFound)
	ok, err = c.Exists(ctx, "a")
	require.NoError(t, err)
	assert.False(t, ok)
	m, err := c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"b": []byte("2")}, m)
	res := c.DoBatch(ctx, []backends.CacheOp{{Kind: backends.CacheOpGet, Key: "a"}, {Kind: backends.CacheOpExists, Key: "a"}})
	assert.False(t, res[0].Found)
	assert.False(t, res[1].Found)
	assert.Len(t, rawKeys(t, raw, c.prefix), 2, "etcd still has the entry; reads hide it")

	// Real time: a short TTL is hidden on time, and etcd drops the key when
	// the bucket's lease (at least 2s) ends.
	c.now = time.Now
	start := time.Now()
	require.NoError(t, c.Set(ctx, "short", []byte("x"), 300*time.Millisecond))
	require.Eventually(t, func() bool {
		ok, err := c.Exists(ctx, "short")
		return err == nil && !ok
	}, 2*time.Second, 5*time.Millisecond)
	hidden := time.Since(start)
	assert.GreaterOrEqual(t, hidden, 300*time.Millisecond)
	require.Eventually(t, func() bool {
		resp, err := raw.Get(ctx, c.key("short"))
		return err == nil && len(resp.Kvs) == 0
	}, 5*time.Second, 20*time.Millisecond)
	t.Logf("ttl 300ms: hidden after %v, removed by etcd after %v", hidden, time.Since(start))
}

// TestCacheLeaseBuckets: entries whose deadlines fall into the same second
// share one lease.
func TestCacheLeaseBuckets(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	conn := testConn(t, srv)
	raw := rawClient(t, srv)
	ctx := t.Context()

	distinct := func(c *cacheStore) map[clientv3.LeaseID]int {
		m := map[clientv3.LeaseID]int{}
		for _, kv := range rawKeys(t, raw, c.prefix) {
			m[kv.Lease]++
		}
		return m
	}

	t.Run("one batch, close ttls", func(t *testing.T) {
		c := newTestCache(t, conn)
		var items []backends.CacheItem
		for i := range 300 {
			items = append(items, backends.CacheItem{Key: fmt.Sprintf("k%d", i), Value: []byte("v"),
				TTL: 30*time.Second + time.Duration(i)*time.Millisecond}) // spread over 300ms
		}
		require.NoError(t, c.SetMany(ctx, items))
		leases := distinct(c)
		t.Logf("300 entries, ttl 30s..30.3s: %d leases %v", len(leases), leases)
		assert.LessOrEqual(t, len(leases), 2, "a 300ms spread covers at most two 1s buckets")
		for id := range leases {
			ttl := leaseTTL(t, raw, id)
			assert.GreaterOrEqual(t, ttl, int64(29))
			assert.LessOrEqual(t, ttl, int64(32))
		}
	})

	t.Run("one by one", func(t *testing.T) {
		c := newTestCache(t, conn)
		start := time.Now()
		for i := range 100 {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("k%d", i), []byte("v"), 20*time.Second))
		}
		elapsed := time.Since(start)
		leases := distinct(c)
		t.Logf("100 sets of ttl 20s over %v: %d leases", elapsed, len(leases))
		assert.LessOrEqual(t, len(leases), int(elapsed/time.Second)+2)
	})

	t.Run("distant ttls do not share", func(t *testing.T) {
		c := newTestCache(t, conn)
		require.NoError(t, c.Set(ctx, "a", []byte("v"), 5*time.Second))
		require.NoError(t, c.Set(ctx, "b", []byte("v"), time.Minute))
		require.NoError(t, c.Set(ctx, "c", []byte("v"), 0))
		kvs := rawKeys(t, raw, c.prefix)
		require.Len(t, kvs, 3)
		byKey := map[string]clientv3.LeaseID{}
		for _, kv := range kvs {
			byKey[kv.Key[len(c.prefix):]] = kv.Lease
		}
		assert.NotEqual(t, byKey["a"], byKey["b"])
		assert.Equal(t, clientv3.NoLease, byKey["c"], "no ttl, no lease")
		assert.LessOrEqual(t, leaseTTL(t, raw, byKey["a"]), int64(6))
	})

	t.Run("a lease revoked underneath is replaced", func(t *testing.T) {
		c := newTestCache(t, conn)
		require.NoError(t, c.Set(ctx, "a", []byte("v"), time.Hour))
		kvs := rawKeys(t, raw, c.prefix)
		require.Len(t, kvs, 1)
		_, err := raw.Revoke(ctx, kvs[0].Lease)
		require.NoError(t, err)
		// Same bucket: the cached lease is gone, the write regrants.
		require.NoError(t, c.Set(ctx, "b", []byte("v"), time.Hour))
		require.NoError(t, c.SetMany(ctx, []backends.CacheItem{{Key: "c", Value: []byte("v"), TTL: time.Hour}}))
		kvs = rawKeys(t, raw, c.prefix)
		require.Len(t, kvs, 2)
		assert.NotEqual(t, clientv3.NoLease, kvs[0].Lease)
		assert.Greater(t, leaseTTL(t, raw, kvs[0].Lease), int64(3000))
	})

	t.Run("expired leases are forgotten", func(t *testing.T) {
		m := newLeaseBuckets()
		now := time.Now()
		m.now = func() time.Time { return now }
		cli := conn.Client()
		ids := map[clientv3.LeaseID]bool{}
		for i := range 5 {
			id, err := m.forDeadline(ctx, cli, now.Add(time.Duration(i)*300*time.Millisecond), conn.opContext)
			require.NoError(t, err)
			ids[id] = true
		}
		assert.LessOrEqual(t, len(ids), 3, "deadlines within 1.2s")
		assert.Equal(t, len(ids), m.live())
		now = now.Add(time.Minute)
		_, err := m.forDeadline(ctx, cli, now.Add(time.Second), conn.opContext)
		require.NoError(t, err)
		assert.Equal(t, 1, m.live(), "expired buckets are dropped")
	})
}

func TestCacheClearIsScoped(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	conn := testConn(t, srv)
	raw := rawClient(t, srv)
	ns := testNS()
	a, err := newCacheStore(conn, backends.CacheOptions{Namespace: ns, Name: "a"})
	require.NoError(t, err)
	ab, err := newCacheStore(conn, backends.CacheOptions{Namespace: ns, Name: "ab"})
	require.NoError(t, err)
	require.NoError(t, a.Set(t.Context(), "k", []byte("1"), 0))
	require.NoError(t, ab.Set(t.Context(), "k", []byte("2"), 0))
	require.NoError(t, a.Clear(t.Context()))
	keys := rawKeys(t, raw, ns.WithDefaults().Root+"/")
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k.Key)
	}
	sort.Strings(names)
	assert.Equal(t, []string{ab.key("k")}, names)
}
