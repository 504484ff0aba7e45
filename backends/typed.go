package backends

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// Codec turns values of type T into bytes and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte) (T, error)
}

// JSONCodec encodes with encoding/json. It is the default codec of Typed.
type JSONCodec[T any] struct{}

// Marshal encodes v as JSON.
func (JSONCodec[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new T.
func (JSONCodec[T]) Unmarshal(data []byte) (T, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// ProtoCodec encodes protobuf messages in their binary wire format. T is the
// message pointer type, e.g. ProtoCodec[*pb.User]{}.
type ProtoCodec[T proto.Message] struct {
	// New returns an empty message to decode into. Default: a new message
	// of T's type, found through protobuf reflection.
	New func() T
}

// Marshal encodes v deterministically (stable bytes for equal messages).
func (ProtoCodec[T]) Marshal(v T) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(v)
}

// Unmarshal decodes data into a new T.
func (c ProtoCodec[T]) Unmarshal(data []byte) (T, error) {
	var v T
	if c.New != nil {
		v = c.New()
	} else {
		if any(v) == nil {
			// T is an interface type: there is no concrete type to build.
			return v, fmt.Errorf("proto codec: cannot create a %T value; set ProtoCodec.New", (*T)(nil))
		}
		// Generated message types answer ProtoReflect on a nil pointer,
		// which is enough to build an empty message of the same type.
		m, ok := v.ProtoReflect().Type().New().Interface().(T)
		if !ok {
			return v, fmt.Errorf("proto codec: cannot create %T; set ProtoCodec.New", v)
		}
		v = m
	}
	return v, proto.Unmarshal(data, v)
}

// TypedItem is one entry for Typed.SetMany.
type TypedItem[T any] struct {
	Key   string
	Value T
	TTL   time.Duration // 0 = no expiry
}

// Typed is a Cache of T values: the same operations, with a Codec in
// between. Values that cannot be encoded or decoded fail with
// ErrInvalidArgument; everything else comes from the underlying Cache.
type Typed[T any] struct {
	cache Cache
	codec Codec[T]
}

// NewTyped wraps c. A nil codec means JSONCodec[T].
func NewTyped[T any](c Cache, codec Codec[T]) *Typed[T] {
	if codec == nil {
		codec = JSONCodec[T]{}
	}
	return &Typed[T]{cache: c, codec: codec}
}

// Cache returns the underlying byte cache.
func (t *Typed[T]) Cache() Cache { return t.cache }

func (t *Typed[T]) encode(key string, v T) ([]byte, error) {
	b, err := t.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("typed: encode %q: %w", key, &InvalidArgumentError{Field: "value", Value: fmt.Sprintf("(%T)", v), Reason: err.Error()})
	}
	return b, nil
}

func (t *Typed[T]) decode(key string, b []byte) (T, error) {
	v, err := t.codec.Unmarshal(b)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("typed: decode %q: %w", key, Invalid("value", b, "cannot decode: "+err.Error()))
	}
	return v, nil
}

// Get returns the decoded value, or ErrNotFound.
func (t *Typed[T]) Get(ctx context.Context, key string) (T, error) {
	b, err := t.cache.Get(ctx, key)
	if err != nil {
		var zero T
		return zero, err
	}
	return t.decode(key, b)
}

// Set encodes and stores v for ttl (0 = no expiry).
func (t *Typed[T]) Set(ctx context.Context, key string, v T, ttl time.Duration) error {
	b, err := t.encode(key, v)
	if err != nil {
		return err
	}
	return t.cache.Set(ctx, key, b, ttl)
}

// Delete removes key.
func (t *Typed[T]) Delete(ctx context.Context, key string) error { return t.cache.Delete(ctx, key) }

// Exists reports whether key is present.
func (t *Typed[T]) Exists(ctx context.Context, key string) (bool, error) {
	return t.cache.Exists(ctx, key)
}

// Clear removes every key of the underlying cache.
func (t *Typed[T]) Clear(ctx context.Context) error { return t.cache.Clear(ctx) }

// GetMany returns the decoded values of the keys that exist. One value that
// does not decode fails the call.
func (t *Typed[T]) GetMany(ctx context.Context, keys []string) (map[string]T, error) {
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

// GetOrLoad returns the decoded value of key or, on a miss, runs loader,
// caches its result (encoded, for opts.TTL) and returns it. When the
// underlying cache is a CacheLoader (as the node's cache facade is), the
// load is its: one loader runs for all concurrent callers, across nodes,
// and opts.NegativeTTL caches an ErrNotFound from loader. On any other
// cache GetOrLoad is a plain Get, then load and Set: concurrent callers may
// each load, and misses are not cached. A value that cannot be encoded or
// decoded fails with ErrInvalidArgument.
func (t *Typed[T]) GetOrLoad(ctx context.Context, key string, opts LoadOptions, loader func(context.Context) (T, error)) (T, error) {
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
	if cl, ok := t.cache.(CacheLoader); ok {
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
func (t *Typed[T]) getOrLoad(ctx context.Context, key string, opts LoadOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	b, err := t.cache.Get(ctx, key)
	if err == nil || !errors.Is(err, ErrNotFound) {
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

// SetMany encodes every item first, then stores them all.
func (t *Typed[T]) SetMany(ctx context.Context, items []TypedItem[T]) error {
	raw := make([]CacheItem, len(items))
	for i, it := range items {
		b, err := t.encode(it.Key, it.Value)
		if err != nil {
			return err
		}
		raw[i] = CacheItem{Key: it.Key, Value: b, TTL: it.TTL}
	}
	return t.cache.SetMany(ctx, raw)
}
