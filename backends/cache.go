package backends

import (
	"context"
	"io"
	"math/rand/v2"
	"time"
)

// Cache is a byte-valued key/value cache scoped to one named namespace
// (<root>/<env>/cache/<name>/). Package backends/typed adds codecs on top.
//
// Keys are validated with ValidateKey, values with ValidateValue against the
// configured maximum, TTLs with ValidateCacheTTL (0 means no expiry; at
// least MinCacheTTL, 1ms, otherwise).
type Cache interface {
	// Get returns the value, or ErrNotFound when the key is missing or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value with the given TTL (0 = no expiry).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes the key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Exists reports whether the key is present and not expired.
	Exists(ctx context.Context, key string) (bool, error)
	// Clear removes every key of this cache's namespace and nothing else.
	Clear(ctx context.Context) error
	// GetMany returns the values of the keys that exist; missing keys are
	// simply absent from the map.
	GetMany(ctx context.Context, keys []string) (map[string][]byte, error)
	// SetMany stores every item (each with its own TTL).
	SetMany(ctx context.Context, items []CacheItem) error
	// Close releases what the cache holds; see Lifecycle in the package
	// documentation. A cache runs no background work, so for most
	// implementations there is nothing to release.
	io.Closer
}

// CacheItem is one entry for SetMany.
type CacheItem struct {
	Key   string
	Value []byte
	TTL   time.Duration // 0 = no expiry
}

// CacheOptions configures a cache implementation.
type CacheOptions struct {
	// Namespace scopes the keys (root + env). Env is required.
	Namespace Namespace
	// Name of the cache: the fourth key segment (ValidateName rules).
	Name string
	// MaxValueSize is the largest value accepted, in bytes.
	// Default: DefaultMaxValueSize (1 MiB).
	MaxValueSize int
}

// Validate checks the options and returns a copy with defaults applied.
func (o CacheOptions) Validate() (CacheOptions, error) {
	o.Namespace = o.Namespace.WithDefaults()
	if err := o.Namespace.Validate(); err != nil {
		return o, err
	}
	if err := ValidateName("cache name", o.Name); err != nil {
		return o, err
	}
	if o.MaxValueSize < 0 {
		return o, Invalid("max value size", o.MaxValueSize, "must not be negative")
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	return o, nil
}

// LoadOptions tunes a cache-aside GetOrLoad (CacheLoader, and
// typed.Cache[T].GetOrLoad in backends/typed).
type LoadOptions struct {
	// TTL of a loaded value; 0 = no expiry, else at least MinCacheTTL.
	TTL time.Duration
	// Jitter adds a random extra of up to this fraction of TTL (0..1), so
	// keys loaded together do not expire together. Default: 0.
	Jitter float64
	// NegativeTTL, when positive, caches a loader's ErrNotFound for this
	// long: later GetOrLoad calls return ErrNotFound without loading.
	// Default: 0 (misses are not cached).
	NegativeTTL time.Duration
	// LockTTL bounds how long one node may hold the cross-node load lock
	// (it must cover the loader's run time). Default: 15s.
	LockTTL time.Duration
}

// Validate checks the options.
func (o LoadOptions) Validate() error {
	if err := ValidateCacheTTL("ttl", o.TTL); err != nil {
		return err
	}
	if err := ValidateCacheTTL("negative ttl", o.NegativeTTL); err != nil {
		return err
	}
	if err := ValidateLockTTL("lock ttl", o.LockTTL); err != nil {
		return err
	}
	if o.Jitter < 0 || o.Jitter > 1 {
		return Invalid("jitter", o.Jitter, "must be between 0 and 1")
	}
	return nil
}

// EntryTTL is the TTL to store a loaded value with: TTL plus a random
// extra of up to Jitter·TTL.
func (o LoadOptions) EntryTTL() time.Duration {
	if o.TTL <= 0 || o.Jitter <= 0 {
		return o.TTL
	}
	return o.TTL + time.Duration(rand.Float64()*o.Jitter*float64(o.TTL))
}

// CacheLoader is implemented by caches that fill a missing key through a
// loader, once across concurrent callers. typed.Cache[T].GetOrLoad uses it
// when the cache it wraps has it.
type CacheLoader interface {
	// GetOrLoad returns the cached value of key or, on a miss, runs loader
	// and caches what it returns (for opts.TTL). A loader error is
	// returned and nothing is cached, except that ErrNotFound is cached as
	// a miss for opts.NegativeTTL when that is positive.
	GetOrLoad(ctx context.Context, key string, opts LoadOptions, loader func(context.Context) ([]byte, error)) ([]byte, error)
}

// CacheOpKind says what one operation of a batch does.
type CacheOpKind int

// The kinds of batched cache operations.
const (
	CacheOpGet CacheOpKind = iota + 1
	CacheOpSet
	CacheOpDelete
	CacheOpExists
)

// CacheOp is one operation of a batch.
type CacheOp struct {
	Kind  CacheOpKind
	Key   string
	Value []byte        // CacheOpSet only
	TTL   time.Duration // CacheOpSet only
}

// CacheResult is the outcome of one CacheOp, in the same position.
// For Get: Value and Found. For Exists: Found. Err is per operation (an
// invalid key fails only its own op); ErrNotFound is never used here, a
// missing key is Found == false.
type CacheResult struct {
	Value []byte
	Found bool
	Err   error
}

// CacheBatcher is the optional capability the cache actor uses for
// auto-pipelining: run many independent operations in as few round trips as
// the backend allows. The returned slice has len(ops) entries. A transport
// failure sets Err on every affected op; DoBatch never panics on bad input.
type CacheBatcher interface {
	DoBatch(ctx context.Context, ops []CacheOp) []CacheResult
}
