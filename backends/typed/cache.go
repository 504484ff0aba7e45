package typed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
)

// Item is one entry for Cache.SetMany.
type Item[T any] struct {
	Key   string
	Value T
	TTL   time.Duration // 0 = no expiry
}

// Cache is a backends.Cache of T values: the same operations, with a Codec
// in between. Values that cannot be encoded or decoded fail with
// backends.ErrInvalidArgument; every other error comes from the wrapped
// cache. Cache does not own the wrapped cache: closing it is the caller's
// business.
type Cache[T any] struct {
	cache backends.Cache
	codec Codec[T]
}

// New wraps c. A nil codec means JSON[T].
func New[T any](c backends.Cache, codec Codec[T]) *Cache[T] {
	if codec == nil {
		codec = JSON[T]{}
	}
	return &Cache[T]{cache: c, codec: codec}
}

// Unwrap returns the wrapped byte cache.
func (t *Cache[T]) Unwrap() backends.Cache { return t.cache }

func (t *Cache[T]) encode(key string, v T) ([]byte, error) {
	b, err := t.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("typed: encode %q: %w", key, &backends.InvalidArgumentError{Field: "value", Value: fmt.Sprintf("(%T)", v), Reason: err.Error()})
	}
	return b, nil
}

func (t *Cache[T]) decode(key string, b []byte) (T, error) {
	v, err := t.codec.Unmarshal(b)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("typed: decode %q: %w", key, backends.Invalid("value", b, "cannot decode: "+err.Error()))
	}
	return v, nil
}

// Get returns the decoded value, or backends.ErrNotFound.
func (t *Cache[T]) Get(ctx context.Context, key string) (T, error) {
	b, err := t.cache.Get(ctx, key)
	if err != nil {
		var zero T
		return zero, err
	}
	return t.decode(key, b)
}

// Set encodes and stores v for ttl (0 = no expiry).
func (t *Cache[T]) Set(ctx context.Context, key string, v T, ttl time.Duration) error {
	b, err := t.encode(key, v)
	if err != nil {
		return err
	}
	return t.cache.Set(ctx, key, b, ttl)
}

// Delete removes key.
func (t *Cache[T]) Delete(ctx context.Context, key string) error { return t.cache.Delete(ctx, key) }

// Exists reports whether key is present.
func (t *Cache[T]) Exists(ctx context.Context, key string) (bool, error) {
	return t.cache.Exists(ctx, key)
}

// Clear removes every key of the wrapped cache.
func (t *Cache[T]) Clear(ctx context.Context) error { return t.cache.Clear(ctx) }

// GetMany returns the decoded values of the keys that exist. One value that
// does not decode fails the call.
func (t *Cache[T]) GetMany(ctx context.Context, keys []string) (map[string]T, error) {
	raw, err := t.cache.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]T, len(raw))
	for k, b := range raw {
		v, err := t.decode(k, b)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// SetMany encodes every item first, then stores them all.
func (t *Cache[T]) SetMany(ctx context.Context, items []Item[T]) error {
	raw := make([]backends.CacheItem, len(items))
	for i, it := range items {
		b, err := t.encode(it.Key, it.Value)
		if err != nil {
			return err
		}
		raw[i] = backends.CacheItem{Key: it.Key, Value: b, TTL: it.TTL}
	}
	return t.cache.SetMany(ctx, raw)
}

// GetOrLoad returns the decoded value of key or, on a miss, runs loader,
// caches its result (encoded, for opts.TTL) and returns it.
//
// When the wrapped cache is a backends.CacheLoader the load is its: one
// loader runs for all concurrent callers, and opts.NegativeTTL caches an
// ErrNotFound from loader. On any other cache GetOrLoad is a Get, then a
// load and a Set: concurrent callers may each load, and misses are not
// cached. A value that cannot be encoded or decoded fails with
// backends.ErrInvalidArgument.
func (t *Cache[T]) GetOrLoad(ctx context.Context, key string, opts backends.LoadOptions, loader func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := opts.Validate(); err != nil {
		return zero, fmt.Errorf("typed: get or load %q: %w", key, err)
	}
	// The loader's own value, when it ran here: no need to decode what
	// was just encoded.
	var loaded *T
	load := func(ctx context.Context) ([]byte, error) {
		v, err := loader(ctx)
		if err != nil {
			return nil, err
		}
		b, err := t.encode(key, v)
		if err == nil {
			loaded = &v
		}
		return b, err
	}
	var b []byte
	var err error
	if cl, ok := t.cache.(backends.CacheLoader); ok {
		b, err = cl.GetOrLoad(ctx, key, opts, load)
	} else {
		b, err = t.getOrLoad(ctx, key, opts, load)
	}
	switch {
	case err != nil:
		return zero, err
	case loaded != nil:
		return *loaded, nil
	}
	return t.decode(key, b)
}

// getOrLoad is GetOrLoad on a cache that is not a CacheLoader.
func (t *Cache[T]) getOrLoad(ctx context.Context, key string, opts backends.LoadOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	b, err := t.cache.Get(ctx, key)
	if err == nil || !errors.Is(err, backends.ErrNotFound) {
		return b, err
	}
	if b, err = load(ctx); err != nil {
		return nil, err
	}
	if err := t.cache.Set(ctx, key, b, opts.EntryTTL()); err != nil {
		return nil, err
	}
	return b, nil
}
