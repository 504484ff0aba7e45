package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
)

// CacheClient is the typed facade of one named cache served by a cache
// actor: it implements backends.Cache by messaging the actor, so plain Go
// code gets the actor's auto-pipelining. Wrap it with typed.New (package
// backends/typed) for typed values. It is safe for concurrent use.
type CacheClient struct {
	root   *actor.RootContext
	pid    *actor.PID
	name   string
	locker backends.Locker // for GetOrLoad across nodes; may be nil
	flight singleflight.Group
}

var _ backends.Cache = (*CacheClient)(nil)

// newCacheClient returns a facade for cache name served by the actor at pid.
// locker, if not nil, makes GetOrLoad exclusive across nodes.
func newCacheClient(root *actor.RootContext, pid *actor.PID, name string, locker backends.Locker) *CacheClient {
	return &CacheClient{root: root, pid: pid, name: name, locker: locker}
}

// Name returns the cache name.
func (c *CacheClient) Name() string { return c.name }

// Close does nothing and returns nil: the facade holds nothing of its own
// (the cache actor is the node's, and Stop ends it), so it stays usable.
func (c *CacheClient) Close() error { return nil }

func ttlpb(ttl time.Duration) *durationpb.Duration {
	if ttl == 0 {
		return nil
	}
	return durationpb.New(ttl)
}

// Get implements backends.Cache.
func (c *CacheClient) Get(ctx context.Context, key string) ([]byte, error) {
	resp, err := actors.Request[*cachev1.GetResponse](ctx, c.root, c.pid, &cachev1.GetRequest{Name: c.name, Key: key})
	if err != nil {
		return nil, err
	}
	if resp.GetValue() == nil {
		return []byte{}, nil
	}
	return resp.GetValue(), nil
}

// opErr names the operation in an error found by the facade itself, as
// the cache actor names it in its answers.
func (c *CacheClient) opErr(verb, key string, err error) error {
	if key == "" {
		return fmt.Errorf("cache %q: %s: %w", c.name, verb, err)
	}
	return fmt.Errorf("cache %q: %s %q: %w", c.name, verb, key, err)
}

// Set implements backends.Cache.
func (c *CacheClient) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := backends.ValidateCacheTTL("ttl", ttl); err != nil {
		return c.opErr("set", key, err)
	}
	_, err := actors.Request[*cachev1.SetResponse](ctx, c.root, c.pid,
		&cachev1.SetRequest{Name: c.name, Key: key, Value: value, Ttl: ttlpb(ttl)})
	return err
}

// Delete implements backends.Cache.
func (c *CacheClient) Delete(ctx context.Context, key string) error {
	_, err := actors.Request[*cachev1.DeleteResponse](ctx, c.root, c.pid, &cachev1.DeleteRequest{Name: c.name, Key: key})
	return err
}

// Exists implements backends.Cache.
func (c *CacheClient) Exists(ctx context.Context, key string) (bool, error) {
	resp, err := actors.Request[*cachev1.ExistsResponse](ctx, c.root, c.pid, &cachev1.ExistsRequest{Name: c.name, Key: key})
	if err != nil {
		return false, err
	}
	return resp.GetExists(), nil
}

// Clear implements backends.Cache.
func (c *CacheClient) Clear(ctx context.Context) error {
	_, err := actors.Request[*cachev1.ClearResponse](ctx, c.root, c.pid, &cachev1.ClearRequest{Name: c.name})
	return err
}

// GetMany implements backends.Cache.
func (c *CacheClient) GetMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	resp, err := actors.Request[*cachev1.GetManyResponse](ctx, c.root, c.pid, &cachev1.GetManyRequest{Name: c.name, Keys: keys})
	if err != nil {
		return nil, err
	}
	out := resp.GetValues()
	if out == nil {
		out = map[string][]byte{}
	}
	for k, v := range out {
		if v == nil {
			out[k] = []byte{}
		}
	}
	return out, nil
}

// SetMany implements backends.Cache.
func (c *CacheClient) SetMany(ctx context.Context, items []backends.CacheItem) error {
	req := &cachev1.SetManyRequest{Name: c.name, Items: make([]*cachev1.Item, 0, len(items))}
	for _, it := range items {
		if err := backends.ValidateCacheTTL("ttl", it.TTL); err != nil {
			return c.opErr("set many", it.Key, err)
		}
		req.Items = append(req.Items, &cachev1.Item{Key: it.Key, Value: it.Value, Ttl: ttlpb(it.TTL)})
	}
	_, err := actors.Request[*cachev1.SetManyResponse](ctx, c.root, c.pid, req)
	return err
}

// Stats returns the actor's auto-pipelining counters for this cache.
func (c *CacheClient) Stats(ctx context.Context) (batches, ops, maxBatch uint64, err error) {
	resp, err := actors.Request[*cachev1.StatsResponse](ctx, c.root, c.pid, &cachev1.StatsRequest{Name: c.name})
	if err != nil {
		return 0, 0, 0, err
	}
	return resp.GetBatches(), resp.GetOps(), resp.GetMaxBatch(), nil
}

var _ backends.CacheLoader = (*CacheClient)(nil)

// negativePrefix marks the companion key that records a cached miss; the
// group-separator byte keeps it out of the way of ordinary keys.
const negativePrefix = "\x1dneg:"

// GetOrLoad returns the cached value of key or, on a miss, runs loader
// once and caches its result. Concurrent callers for the same key share one
// load: within a process by single-flight, across nodes by a distributed
// lock (when the client has a Locker), re-checking the cache after the lock
// is taken so a value loaded elsewhere is not loaded again. A loader that
// returns an error matching ErrNotFound is cached as a miss for
// opts.NegativeTTL when that is positive.
func (c *CacheClient) GetOrLoad(ctx context.Context, key string, opts backends.LoadOptions, loader func(context.Context) ([]byte, error)) ([]byte, error) {
	if err := backends.ValidateKey(key); err != nil {
		return nil, c.opErr("get or load", key, err)
	}
	if err := opts.Validate(); err != nil {
		return nil, c.opErr("get or load", key, err)
	}
	if v, err := c.lookup(ctx, key, opts); err == nil || !errors.Is(err, errMiss) {
		return v, err
	}
	v, err, _ := c.flight.Do(key, func() (any, error) {
		return c.loadExclusive(ctx, key, opts, loader)
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

var errMiss = errors.New("miss")

// lookup returns the cached value, ErrNotFound for a cached miss, or errMiss.
func (c *CacheClient) lookup(ctx context.Context, key string, opts backends.LoadOptions) ([]byte, error) {
	keys := []string{key}
	if opts.NegativeTTL > 0 && len(negativePrefix)+len(key) <= backends.MaxKeyLen {
		keys = append(keys, negativePrefix+key)
	}
	got, err := c.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	if v, ok := got[key]; ok {
		return v, nil
	}
	if _, ok := got[negativePrefix+key]; ok {
		return nil, fmt.Errorf("cache %s: %q (cached miss): %w", c.name, key, backends.ErrNotFound)
	}
	return nil, errMiss
}

func (c *CacheClient) loadExclusive(ctx context.Context, key string, opts backends.LoadOptions, loader func(context.Context) ([]byte, error)) ([]byte, error) {
	if c.locker != nil {
		ttl := opts.LockTTL
		if ttl <= 0 {
			ttl = 15 * time.Second
		}
		lease, err := c.locker.Acquire(ctx, loadLockName(c.name, key), backends.LockOptions{TTL: ttl})
		if err != nil {
			return nil, fmt.Errorf("cache %s: load lock for %q: %w", c.name, key, err)
		}
		defer func() {
			rc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = lease.Release(rc)
		}()
		// Someone else may have loaded it while we waited for the lock.
		if v, err := c.lookup(ctx, key, opts); err == nil || !errors.Is(err, errMiss) {
			return v, err
		}
	}
	v, err := loader(ctx)
	if err != nil {
		if errors.Is(err, backends.ErrNotFound) && opts.NegativeTTL > 0 && len(negativePrefix)+len(key) <= backends.MaxKeyLen {
			_ = c.Set(ctx, negativePrefix+key, []byte{1}, opts.NegativeTTL)
		}
		return nil, err
	}
	if err := c.Set(ctx, key, v, opts.EntryTTL()); err != nil {
		return nil, err
	}
	return v, nil
}

// loadLockName is a valid lock name (no '/', bounded length) unique per
// cache and key.
func loadLockName(cache, key string) string {
	sum := sha256.Sum256([]byte(cache + "\x00" + key))
	return "cache-load-" + hex.EncodeToString(sum[:16])
}
