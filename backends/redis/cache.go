package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// clearBatch is how many keys one SCAN step asks for and one UNLINK
// pipeline removes: large enough to be quick, small enough not to stall the
// server on huge namespaces.
const clearBatch = 500

// cacheStore is the Cache NewCache returns.
type cacheStore struct {
	conn   *Connector
	opts   backends.CacheOptions
	prefix string
}

var (
	_ backends.Cache        = (*cacheStore)(nil)
	_ backends.CacheBatcher = (*cacheStore)(nil)
)

// NewCache returns the cache named opts.Name on conn: Redis strings under
// <root>/<env>/cache/<name>/<key>, TTLs set with millisecond precision (PX,
// rounded up). It also implements backends.CacheBatcher (one pipeline per
// batch). The connector may be connected later; calls before that fail
// with ErrUnavailable.
func NewCache(conn *Connector, opts backends.CacheOptions) (backends.Cache, error) {
	s, err := newCacheStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newCacheStore is NewCache with the concrete type, for this package's tests.
func newCacheStore(conn *Connector, opts backends.CacheOptions) (*cacheStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "nil", "must not be nil")
	}
	o, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	return &cacheStore{conn: conn, opts: o, prefix: o.Namespace.Prefix(backends.ComponentCache, o.Name)}, nil
}

// Close does nothing and returns nil: the cache runs no background work and
// holds nothing of its own (the client is the connector's), so it stays
// usable. It is there so that every component closes the same way.
func (c *cacheStore) Close() error { return nil }

func (c *cacheStore) key(k string) string { return c.prefix + k }

// pxTTL rounds a positive TTL up to whole milliseconds so go-redis sends it
// as PX and never as a sub-millisecond value it would have to clamp.
func pxTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

func (c *cacheStore) checkSet(key string, value []byte, ttl time.Duration) error {
	if err := backends.ValidateKey(key); err != nil {
		return err
	}
	if err := backends.ValidateValue(value, c.opts.MaxValueSize); err != nil {
		return err
	}
	return backends.ValidateCacheTTL("ttl", ttl)
}

// Get returns the value, or ErrNotFound.
func (c *cacheStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := backends.ValidateKey(key); err != nil {
		return nil, err
	}
	cl, err := c.conn.client()
	if err != nil {
		return nil, err
	}
	v, err := cl.Get(ctx, c.key(key)).Bytes()
	if err != nil {
		return nil, mapErr("redis: cache get", err)
	}
	return v, nil
}

// Set stores value for ttl (0 = no expiry).
func (c *cacheStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := c.checkSet(key, value, ttl); err != nil {
		return err
	}
	cl, err := c.conn.client()
	if err != nil {
		return err
	}
	return mapErr("redis: cache set", cl.Set(ctx, c.key(key), value, pxTTL(ttl)).Err())
}

// Delete removes key; a missing key is not an error.
func (c *cacheStore) Delete(ctx context.Context, key string) error {
	if err := backends.ValidateKey(key); err != nil {
		return err
	}
	cl, err := c.conn.client()
	if err != nil {
		return err
	}
	return mapErr("redis: cache delete", cl.Del(ctx, c.key(key)).Err())
}

// Exists reports whether key is present.
func (c *cacheStore) Exists(ctx context.Context, key string) (bool, error) {
	if err := backends.ValidateKey(key); err != nil {
		return false, err
	}
	cl, err := c.conn.client()
	if err != nil {
		return false, err
	}
	n, err := cl.Exists(ctx, c.key(key)).Result()
	if err != nil {
		return false, mapErr("redis: cache exists", err)
	}
	return n == 1, nil
}

// GetMany returns the values of the keys that exist, in one pipeline of GETs
// (not MGET, whose keys would have to share a slot on Redis Cluster). Any
// invalid key fails the whole call before anything is sent.
func (c *cacheStore) GetMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	for _, k := range keys {
		if err := backends.ValidateKey(k); err != nil {
			return nil, err
		}
	}
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	cl, err := c.conn.client()
	if err != nil {
		return nil, err
	}
	pipe := cl.Pipeline()
	cmds := make([]*goredis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, c.key(k))
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read below
	for i, cmd := range cmds {
		v, err := cmd.Bytes()
		switch {
		case err == nil:
			out[keys[i]] = v
		case errors.Is(err, goredis.Nil):
		default:
			return nil, mapErr("redis: cache get many", err)
		}
	}
	return out, nil
}

// SetMany stores every item in one pipeline. Any invalid item fails the
// whole call before anything is sent.
func (c *cacheStore) SetMany(ctx context.Context, items []backends.CacheItem) error {
	for _, it := range items {
		if err := c.checkSet(it.Key, it.Value, it.TTL); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	cl, err := c.conn.client()
	if err != nil {
		return err
	}
	pipe := cl.Pipeline()
	for _, it := range items {
		pipe.Set(ctx, c.key(it.Key), it.Value, pxTTL(it.TTL))
	}
	cmds, _ := pipe.Exec(ctx)
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return mapErr("redis: cache set many", err)
		}
	}
	return nil
}

// DoBatch runs ops in one pipeline. An op that fails validation gets its own
// error and is not sent; the others still run.
func (c *cacheStore) DoBatch(ctx context.Context, ops []backends.CacheOp) []backends.CacheResult {
	res := make([]backends.CacheResult, len(ops))
	cmds := make([]goredis.Cmder, len(ops))
	valid := 0
	for i, op := range ops {
		switch op.Kind {
		case backends.CacheOpGet, backends.CacheOpDelete, backends.CacheOpExists:
			res[i].Err = backends.ValidateKey(op.Key)
		case backends.CacheOpSet:
			res[i].Err = c.checkSet(op.Key, op.Value, op.TTL)
		default:
			res[i].Err = backends.Invalid("op kind", int(op.Kind), "unknown cache operation")
		}
		if res[i].Err == nil {
			valid++
		}
	}
	if valid == 0 {
		return res
	}
	cl, err := c.conn.client()
	if err != nil {
		for i := range res {
			if res[i].Err == nil {
				res[i].Err = err
			}
		}
		return res
	}
	pipe := cl.Pipeline()
	for i, op := range ops {
		if res[i].Err != nil {
			continue
		}
		k := c.key(op.Key)
		switch op.Kind {
		case backends.CacheOpGet:
			cmds[i] = pipe.Get(ctx, k)
		case backends.CacheOpSet:
			cmds[i] = pipe.Set(ctx, k, op.Value, pxTTL(op.TTL))
		case backends.CacheOpDelete:
			cmds[i] = pipe.Del(ctx, k)
		case backends.CacheOpExists:
			cmds[i] = pipe.Exists(ctx, k)
		}
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read below
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		switch cmd := cmd.(type) {
		case *goredis.StringCmd:
			v, err := cmd.Bytes()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			res[i].Value, res[i].Found, res[i].Err = v, err == nil, mapErr("redis: cache batch get", err)
		case *goredis.IntCmd:
			n, err := cmd.Result()
			if ops[i].Kind == backends.CacheOpExists {
				res[i].Found = err == nil && n == 1
			}
			res[i].Err = mapErr("redis: cache batch", err)
		default:
			res[i].Err = mapErr("redis: cache batch set", cmd.Err())
		}
	}
	return res
}

// Clear removes every key of this cache and nothing else: SCAN with MATCH on
// the glob-escaped prefix, then UNLINK in pipelined batches. On Redis Cluster
// every master is scanned. Keys written while Clear runs may survive.
func (c *cacheStore) Clear(ctx context.Context) error {
	cl, err := c.conn.client()
	if err != nil {
		return err
	}
	pattern := escapeGlob(c.prefix) + "*"
	if cc, ok := cl.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			return clearNode(ctx, node, pattern)
		})
	} else {
		err = clearNode(ctx, cl, pattern)
	}
	return mapErr("redis: cache clear", err)
}

// clearNode scans one server. Keys are unlinked one command each (in one
// pipeline per batch) because a multi-key UNLINK must stay within one slot
// on Redis Cluster.
func clearNode(ctx context.Context, cl goredis.Cmdable, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := cl.Scan(ctx, cursor, pattern, clearBatch).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			pipe := cl.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// String names the cache for diagnostics.
func (c *cacheStore) String() string { return fmt.Sprintf("redis cache %q", c.prefix) }
