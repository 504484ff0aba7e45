package backends

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Limits enforced by every implementation.
const (
	// MaxKeyLen is the longest user key accepted, in bytes.
	MaxKeyLen = 512
	// MaxNameLen is the longest component/cache/lock/service/election name, in bytes.
	MaxNameLen = 128
	// DefaultMaxValueSize is the default largest value accepted, in bytes (1 MiB).
	DefaultMaxValueSize = 1 << 20
	// DefaultRoot is the default first segment of every key.
	DefaultRoot = "baton"
)

// Backend names accepted in configuration.
const (
	BackendRedis = "redis"
	BackendEtcd  = "etcd"
)

// Component names used as the third segment of the key layout.
const (
	ComponentCache     = "cache"
	ComponentLock      = "lock"
	ComponentElection  = "election"
	ComponentDiscovery = "discovery"
	ComponentConfig    = "config"
)

// ValidateBackend accepts "redis" and "etcd".
func ValidateBackend(field, name string) error {
	switch name {
	case BackendRedis, BackendEtcd:
		return nil
	}
	return Invalid(field, name, `unknown backend (want "redis" or "etcd")`)
}

var envPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Namespace is the isolation scope shared by every component of a node:
// keys are laid out as <root>/<env>/<component>/<name>/<key>. Two namespaces
// with different Env (dev, test, prod, …) never see each other's keys.
type Namespace struct {
	// Root is the first key segment. Default: "baton".
	Root string `yaml:"root" json:"root"`
	// Env is the environment, required: lower-case letters, digits, '-' and
	// '_', at most 32 characters (e.g. "dev", "test", "prod").
	Env string `yaml:"env" json:"env"`
}

// WithDefaults fills Root when empty.
func (n Namespace) WithDefaults() Namespace {
	if n.Root == "" {
		n.Root = DefaultRoot
	}
	return n
}

// Validate checks Root and Env.
func (n Namespace) Validate() error {
	n = n.WithDefaults()
	if err := ValidateName("root", n.Root); err != nil {
		return err
	}
	if n.Env == "" {
		return Invalid("env", n.Env, "must not be empty (use dev, test, prod, …)")
	}
	if !envPattern.MatchString(n.Env) {
		return Invalid("env", n.Env, "must match [a-z0-9][a-z0-9_-]{0,31}")
	}
	return nil
}

// Prefix returns "<root>/<env>/<component>/<name>/", the prefix owning every
// key of one named component instance. The trailing slash is what keeps cache
// "a" from covering cache "ab". Callers validate name first.
func (n Namespace) Prefix(component, name string) string {
	n = n.WithDefaults()
	return n.Root + "/" + n.Env + "/" + component + "/" + name + "/"
}

// Key returns Prefix(component, name) + key.
func (n Namespace) Key(component, name, key string) string {
	return n.Prefix(component, name) + key
}

// ValidateName checks a component-level name (cache, lock, election, service,
// root): non-empty, at most MaxNameLen bytes, no NUL, no '/', no whitespace
// control characters. '/' is refused because names are path segments: cache
// "a/b" would otherwise live inside cache "a".
func ValidateName(field, name string) error {
	switch {
	case name == "":
		return Invalid(field, name, "must not be empty")
	case len(name) > MaxNameLen:
		return Invalid(field, name, fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case strings.ContainsRune(name, 0):
		return Invalid(field, name, "contains a NUL byte")
	case strings.Contains(name, "/"):
		return Invalid(field, name, "must not contain '/'")
	case strings.ContainsAny(name, "\r\n\t"):
		return Invalid(field, name, "must not contain control characters")
	}
	return nil
}

// ValidateKey checks a user key: non-empty, at most MaxKeyLen bytes, no NUL.
// Keys may contain '/', they are always the last segment.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Invalid("key", key, "must not be empty")
	case len(key) > MaxKeyLen:
		return Invalid("key", key, fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case strings.ContainsRune(key, 0):
		return Invalid("key", key, "contains a NUL byte")
	}
	return nil
}

// ValidatePrefix checks a key prefix used by List/Watch: like ValidateKey but
// may be empty (the whole namespace).
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return Invalid("prefix", prefix, fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	}
	if strings.ContainsRune(prefix, 0) {
		return Invalid("prefix", prefix, "contains a NUL byte")
	}
	return nil
}

// ValidateValue checks a value against max (<= 0 means DefaultMaxValueSize).
func ValidateValue(value []byte, max int) error {
	if max <= 0 {
		max = DefaultMaxValueSize
	}
	if len(value) > max {
		return Invalid("value", value, fmt.Sprintf("larger than the maximum of %d bytes", max))
	}
	return nil
}

// ValidateTTL checks a TTL: negative is refused, zero means "no expiry" where
// the operation allows it.
func ValidateTTL(field string, ttl time.Duration) error {
	if ttl < 0 {
		return Invalid(field, ttl, "must not be negative")
	}
	return nil
}

// MinCacheTTL is the shortest cache TTL accepted: Redis keeps expiry times
// in whole milliseconds, so anything shorter could not be stored as given
// (and a TTL of a few nanoseconds is always a unit mistake). TTLs that are
// not whole milliseconds are rounded up on Redis; etcd keeps them exact.
const MinCacheTTL = time.Millisecond

// ValidateCacheTTL checks the TTL of a cache entry: zero means no expiry;
// negative values and positive ones below MinCacheTTL are refused.
func ValidateCacheTTL(field string, ttl time.Duration) error {
	if err := ValidateTTL(field, ttl); err != nil {
		return err
	}
	if ttl > 0 && ttl < MinCacheTTL {
		return Invalid(field, ttl, fmt.Sprintf("below the minimum cache TTL of %v (0 means no expiry)", MinCacheTTL))
	}
	return nil
}

// validatePositiveTTL checks a TTL that must be set (locks, registrations).
func validatePositiveTTL(field string, ttl time.Duration) error {
	if ttl <= 0 {
		return Invalid(field, ttl, "must be positive")
	}
	return nil
}
