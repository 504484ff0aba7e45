package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/internal/components"

	"go.yaml.in/yaml/v3"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

// Spec describes a node — its settings file, called a spec so that the
// word "config" keeps one meaning in Baton, the config center: which
// backend serves each component, how to reach the backends, the environment and the component
// defaults. Load it from YAML with LoadSpec (environment variables
// override the file) or build it in code; Validate reports the first bad
// field by name and value.
//
// With no backend configured at all (no Redis and no etcd section), the node
// starts an embedded etcd server and uses it for every component.
type Spec struct {
	// NodeID identifies this node (lock owners, registrations, instance
	// layer of the config center). Default: "<hostname>-<pid>".
	NodeID string `yaml:"node_id"`
	// Env is the environment isolating keys (dev, test, prod, …).
	// Default: "dev".
	Env string `yaml:"env"`
	// Root is the first key segment. Default: "baton".
	Root string `yaml:"root"`

	// Backends picks "redis" or "etcd" per component. An empty entry means
	// etcd when an etcd section (or the embedded default) is present, else
	// redis.
	Backends BackendChoice `yaml:"backends"`

	// Redis connection settings; nil when no component uses Redis.
	Redis *redis.Config `yaml:"redis"`
	// RedisService, when set, names a service registered in Baton's
	// discovery (which must then run on etcd) whose instance address is
	// the Redis endpoint: the node resolves it at Start and follows the
	// registration when it moves (the Redis connector reconnects to the new
	// address). redis.addrs and redis.url are then ignored. Default: empty.
	RedisService string `yaml:"redis_service"`
	// Etcd connection settings; nil when no component uses etcd (or when
	// the embedded etcd is used).
	Etcd *etcd.Config `yaml:"etcd"`
	// Embedded configures the embedded etcd: used when neither Redis nor
	// etcd is configured, or alongside Redis with Embedded.Enabled.
	Embedded EmbeddedSpec `yaml:"embedded"`

	// Connector tunes connection supervision.
	Connector ConnectorSettings `yaml:"connector"`
	// Components holds the component defaults; the config center's
	// system/component/instance layers override them at run time (hot
	// reload).
	Components ComponentSettings `yaml:"components"`
}

// BackendChoice names the backend of each component.
type BackendChoice struct {
	Cache     string `yaml:"cache"`
	Lock      string `yaml:"lock"` // locks and elections
	Discovery string `yaml:"discovery"`
	Config    string `yaml:"config"`
}

// EmbeddedSpec configures the embedded etcd.
type EmbeddedSpec struct {
	// Enabled runs the embedded etcd even though a Redis section is
	// configured, for the components whose backend is etcd — e.g. Redis
	// for cache and locks, the embedded etcd for discovery and config.
	// It cannot be combined with an etcd section. Without a Redis or etcd
	// section the embedded etcd runs anyway. Default: false.
	Enabled bool `yaml:"enabled"`
	// DataDir keeps the embedded etcd's data so it survives restarts.
	// Default: a fresh temporary directory removed on Stop.
	DataDir string `yaml:"data_dir"`
}

// ConnectorSettings tunes the connector actors.
type ConnectorSettings struct {
	// HealthInterval is the time between health checks. Default: 1s.
	HealthInterval time.Duration `yaml:"health_interval"`
	// BackoffInitial and BackoffMax bound the capped, jittered exponential
	// delay between probes of a backend that was lost. The clients
	// reconnect by themselves, so a probe is cheap and the default cap is
	// the health interval: service resumes about one health interval after
	// the server is back. Defaults: 100ms and HealthInterval.
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
	// RefusedRetry is the wait between attempts while the server refuses
	// the credentials or a setting (ErrUnauthenticated, ErrInvalidArgument):
	// callers get that error at once meanwhile, and a fixed configuration
	// or server is picked up without a restart. Default: 30s.
	RefusedRetry time.Duration `yaml:"refused_retry"`
}

// ComponentSettings are the defaults of the component actors. Each can be
// overridden, while the node runs, through the config center keys
// "system/<name>", "component/<component>/<name>" and
// "instance/<component>/<node id>/<name>" (see runtime package docs).
type ComponentSettings struct {
	// CacheDefaultTTL applies to cache Sets with ttl 0 through the node's
	// facade when positive; 0 or at least backends.MinCacheTTL (1ms).
	// Default: 0 (no expiry).
	CacheDefaultTTL time.Duration `yaml:"cache_default_ttl"`
	// CacheMaxBatch caps how many queued cache requests one backend round
	// trip carries. Default: 256.
	CacheMaxBatch int `yaml:"cache_max_batch"`
	// LockTTL is the lock TTL used when a request gives none; at least
	// backends.MinLockTTL (100ms). Default: 15s.
	LockTTL time.Duration `yaml:"lock_ttl"`
	// LockHandoffLimit bounds how long the lock actor (or a cluster lock
	// grain) passes a lock from waiter to waiter without it ever becoming
	// free; then it is released once so contenders outside the node get a
	// chance. Default: 1s;
	// negative: no limit.
	LockHandoffLimit time.Duration `yaml:"lock_handoff_limit"`
	// ElectionTTL is the leadership session TTL. Default: 10s.
	ElectionTTL time.Duration `yaml:"election_ttl"`
	// RegistrationTTL is the service registration TTL used when Register
	// gives none. Default: 10s.
	RegistrationTTL time.Duration `yaml:"registration_ttl"`
	// OpTimeout bounds one backend operation issued by an actor.
	// Default: 5s.
	OpTimeout time.Duration `yaml:"op_timeout"`
	// MaxValueSize is the largest cache/config value accepted. Default: 1 MiB.
	MaxValueSize int `yaml:"max_value_size"`
}

// DefaultSpec returns the embedded-default configuration with every
// default spelled out.
func DefaultSpec() Spec {
	c := Spec{}
	c.applyDefaults()
	return c
}

// UsesEmbedded reports whether the node runs the embedded etcd: neither
// Redis nor etcd is configured, or Embedded.Enabled is set.
func (c Spec) UsesEmbedded() bool {
	return c.Embedded.Enabled || (c.Redis == nil && c.Etcd == nil && c.RedisService == "")
}

func (c *Spec) applyDefaults() {
	if c.NodeID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		c.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Env == "" {
		c.Env = "dev"
	}
	if c.Root == "" {
		c.Root = backends.DefaultRoot
	}
	if c.RedisService != "" && c.Redis == nil {
		rc := redis.DefaultConfig()
		c.Redis = &rc
	}
	def := backends.BackendRedis
	if c.Etcd != nil || c.UsesEmbedded() {
		def = backends.BackendEtcd
	}
	for _, b := range []*string{&c.Backends.Cache, &c.Backends.Lock, &c.Backends.Discovery, &c.Backends.Config} {
		if *b == "" {
			*b = def
		}
	}
	if c.Connector.HealthInterval == 0 {
		c.Connector.HealthInterval = time.Second
	}
	if c.Connector.BackoffInitial == 0 {
		c.Connector.BackoffInitial = 100 * time.Millisecond
	}
	if c.Connector.BackoffMax == 0 {
		c.Connector.BackoffMax = max(c.Connector.HealthInterval, c.Connector.BackoffInitial)
	}
	if c.Connector.RefusedRetry == 0 {
		c.Connector.RefusedRetry = components.DefaultRefusedRetry
	}
	s := &c.Components
	if s.CacheMaxBatch == 0 {
		s.CacheMaxBatch = 256
	}
	if s.LockTTL == 0 {
		s.LockTTL = backends.DefaultLockTTL
	}
	if s.LockHandoffLimit == 0 {
		s.LockHandoffLimit = components.DefaultHandoffLimit
	}
	if s.ElectionTTL == 0 {
		s.ElectionTTL = backends.DefaultElectionTTL
	}
	if s.RegistrationTTL == 0 {
		s.RegistrationTTL = backends.DefaultRegistrationTTL
	}
	if s.OpTimeout == 0 {
		s.OpTimeout = 5 * time.Second
	}
	if s.MaxValueSize == 0 {
		s.MaxValueSize = backends.DefaultMaxValueSize
	}
}

// WithDefaults returns a copy with every unset field defaulted.
func (c Spec) WithDefaults() Spec {
	c.applyDefaults()
	return c
}

// Validate checks the configuration (after defaults) and returns the first
// problem as an ErrInvalidArgument naming the field and the value.
func (c Spec) Validate() error {
	c.applyDefaults()
	if err := backends.ValidateName("node_id", c.NodeID); err != nil {
		return err
	}
	if err := (backends.Namespace{Root: c.Root, Env: c.Env}).Validate(); err != nil {
		return err
	}
	uses := map[string]bool{}
	for _, b := range []struct{ field, v string }{
		{"backends.cache", c.Backends.Cache}, {"backends.lock", c.Backends.Lock},
		{"backends.discovery", c.Backends.Discovery}, {"backends.config", c.Backends.Config},
	} {
		if err := backends.ValidateBackend(b.field, b.v); err != nil {
			return err
		}
		uses[b.v] = true
		switch {
		case b.v == backends.BackendRedis && c.Redis == nil:
			return backends.Invalid(b.field, b.v, "no redis section configured (set redis.url or redis.addrs)")
		case b.v == backends.BackendEtcd && c.Etcd == nil && !c.UsesEmbedded():
			return backends.Invalid(b.field, b.v, "no etcd section configured (set etcd.endpoints)")
		}
	}
	if c.Embedded.Enabled {
		switch {
		case c.Etcd != nil:
			return backends.Invalid("embedded.enabled", true, "an etcd section is configured too: use one or the other")
		case !uses[backends.BackendEtcd]:
			return backends.Invalid("embedded.enabled", true, "no component has backend etcd (set backends.discovery: etcd, …)")
		}
	}
	if c.RedisService != "" {
		if err := backends.ValidateName("redis_service", c.RedisService); err != nil {
			return err
		}
		if c.Backends.Discovery != backends.BackendEtcd {
			return backends.Invalid("redis_service", c.RedisService, "needs backends.discovery: etcd (Redis cannot be found through itself)")
		}
	}
	if c.Redis != nil && uses[backends.BackendRedis] {
		rc := *c.Redis
		if c.RedisService != "" {
			// The address comes from discovery at Start; check the rest.
			rc.URL, rc.Addrs = "", []string{"127.0.0.1:6379"}
		}
		if err := rc.Validate(); err != nil {
			return err
		}
	}
	if c.Etcd != nil && uses[backends.BackendEtcd] {
		if err := c.Etcd.Validate(); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"connector.health_interval", c.Connector.HealthInterval},
		{"connector.backoff_initial", c.Connector.BackoffInitial},
		{"connector.backoff_max", c.Connector.BackoffMax},
		{"connector.refused_retry", c.Connector.RefusedRetry},
		{"components.lock_ttl", c.Components.LockTTL},
		{"components.election_ttl", c.Components.ElectionTTL},
		{"components.registration_ttl", c.Components.RegistrationTTL},
		{"components.op_timeout", c.Components.OpTimeout},
	} {
		if d.v <= 0 {
			return backends.Invalid(d.field, d.v, "must be positive")
		}
	}
	if err := backends.ValidateCacheTTL("components.cache_default_ttl", c.Components.CacheDefaultTTL); err != nil {
		return err
	}
	if err := backends.ValidateLockTTL("components.lock_ttl", c.Components.LockTTL); err != nil {
		return err
	}
	if c.Connector.BackoffMax < c.Connector.BackoffInitial {
		return backends.Invalid("connector.backoff_max", c.Connector.BackoffMax, "must not be below connector.backoff_initial")
	}
	if c.Components.CacheMaxBatch < 1 || c.Components.CacheMaxBatch > 10000 {
		return backends.Invalid("components.cache_max_batch", c.Components.CacheMaxBatch, "must be between 1 and 10000")
	}
	if c.Components.MaxValueSize < 1 || c.Components.MaxValueSize > 64<<20 {
		return backends.Invalid("components.max_value_size", c.Components.MaxValueSize, "must be between 1 and 64 MiB")
	}
	return nil
}

// LoadSpec reads a YAML file, applies BATON_* environment overrides (see
// ApplyEnv), fills defaults and validates. Unknown YAML fields are errors, so
// a typo never silently falls back to a default.
func LoadSpec(path string) (Spec, error) {
	var c Spec
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, backends.Invalid("config file", path, err.Error())
		}
		if c, err = parseConfig(path, data); err != nil {
			return c, err
		}
	}
	if err := c.ApplyEnv(os.LookupEnv); err != nil {
		return c, err
	}
	c.applyDefaults()
	return c, c.Validate()
}

// ParseSpec decodes YAML (no environment, no defaults). An error names
// the field (e.g. components.lock_ttl), the value and the line; LoadSpec
// adds the file name.
func ParseSpec(data []byte) (Spec, error) { return parseConfig("", data) }

// parseConfig is ParseSpec for a document read from source (a file name,
// or "" for data given in code).
func parseConfig(source string, data []byte) (Spec, error) {
	var c Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty document (io.EOF) is a valid, all-defaults configuration.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, yamlError(source, data, err)
	}
	return c, nil
}

// yamlLine matches one error of the YAML decoder: "line 3: <what>".
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns the YAML decoder's first error into an
// *InvalidArgumentError that names the field by its path (its own text
// names Go types instead: "cannot unmarshal !!int `10` into
// time.Duration").
func yamlError(source string, data []byte, err error) error {
	where := func(line int) string {
		if source == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("%s line %d", source, line)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		field := "config file"
		if source == "" {
			return backends.Invalid(field, "(yaml)", msg)
		}
		return backends.Invalid(field, source, msg)
	}
	line, _ := strconv.Atoi(m[1])
	what := m[2]
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	path, value := yamlPathAt(&root, line)
	if path == "" {
		return backends.Invalid("config file", where(line), what)
	}
	var reason string
	switch {
	case strings.Contains(what, " not found in type "):
		reason = "unknown field"
	case strings.HasSuffix(what, "into time.Duration"):
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			reason = fmt.Sprintf("a duration needs a unit: write %q (or ms, m, h)", value+"s")
		} else {
			reason = `not a duration: write e.g. "500ms", "10s" or "1m30s"`
		}
	case strings.Contains(what, "cannot unmarshal"):
		reason = "must be " + yamlKind(what)
	default:
		reason = what
	}
	return backends.Invalid(path, value, reason+" ("+where(line)+")")
}

// yamlKind words the Go type at the end of a YAML decoder's "cannot
// unmarshal … into <type>" for a person writing YAML.
func yamlKind(what string) string {
	_, typ, _ := strings.Cut(what, " into ")
	switch {
	case strings.HasPrefix(typ, "[]"):
		return "a list"
	case strings.HasPrefix(typ, "map["), strings.Contains(typ, "."):
		return "a section (key: value lines)"
	case strings.HasPrefix(typ, "int"), strings.HasPrefix(typ, "uint"):
		return "a whole number"
	case strings.HasPrefix(typ, "float"):
		return "a number"
	case typ == "bool":
		return "true or false"
	case typ == "string":
		return "a string"
	}
	return "of another kind"
}

// yamlPathAt returns the dotted path of the deepest mapping key on line
// (e.g. "components.lock_ttl") and its scalar value, or "" when no key is
// on that line.
func yamlPathAt(n *yaml.Node, line int) (path, value string) {
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if prefix != "" {
					p = prefix + "." + k.Value
				}
				if k.Line == line || (v.Kind == yaml.ScalarNode && v.Line == line) {
					path, value = p, v.Value
					if v.Kind != yaml.ScalarNode {
						value = ""
					}
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if c.Kind == yaml.ScalarNode && c.Line == line && path == "" {
					path, value = fmt.Sprintf("%s[%d]", prefix, i), c.Value
				}
				walk(c, fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
	walk(n, "")
	return path, value
}

// Environment variables read by ApplyEnv. Lists are comma-separated.
const (
	EnvNodeID            = "BATON_NODE_ID"
	EnvEnv               = "BATON_ENV"
	EnvRoot              = "BATON_ROOT"
	EnvCacheBackend      = "BATON_CACHE_BACKEND"
	EnvLockBackend       = "BATON_LOCK_BACKEND"
	EnvDiscoveryBackend  = "BATON_DISCOVERY_BACKEND"
	EnvConfigBackend     = "BATON_CONFIG_BACKEND"
	EnvRedisURL          = "BATON_REDIS_URL"
	EnvRedisAddrs        = "BATON_REDIS_ADDRS"
	EnvRedisUsername     = "BATON_REDIS_USERNAME"
	EnvRedisPassword     = "BATON_REDIS_PASSWORD"
	EnvRedisDB           = "BATON_REDIS_DB"
	EnvRedisService      = "BATON_REDIS_SERVICE"
	EnvEtcdEndpoints     = "BATON_ETCD_ENDPOINTS"
	EnvEtcdUsername      = "BATON_ETCD_USERNAME"
	EnvEtcdPassword      = "BATON_ETCD_PASSWORD"
	EnvEmbeddedEnabled   = "BATON_EMBEDDED_ENABLED"
	EnvEmbeddedDataDir   = "BATON_EMBEDDED_DATA_DIR"
	EnvOpTimeout         = "BATON_OP_TIMEOUT"
	EnvConnectorInterval = "BATON_CONNECTOR_HEALTH_INTERVAL"
)

// ApplyEnv overrides fields from environment variables looked up with
// lookup (os.LookupEnv in LoadSpec). Setting a Redis or etcd variable
// creates that section.
func (c *Spec) ApplyEnv(lookup func(string) (string, bool)) error {
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
	list := func(v string) []string {
		var out []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	str(EnvNodeID, &c.NodeID)
	str(EnvEnv, &c.Env)
	str(EnvRoot, &c.Root)
	str(EnvCacheBackend, &c.Backends.Cache)
	str(EnvLockBackend, &c.Backends.Lock)
	str(EnvDiscoveryBackend, &c.Backends.Discovery)
	str(EnvConfigBackend, &c.Backends.Config)
	str(EnvEmbeddedDataDir, &c.Embedded.DataDir)
	if v, ok := lookup(EnvEmbeddedEnabled); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return backends.Invalid(EnvEmbeddedEnabled, v, "not a boolean (true or false)")
		}
		c.Embedded.Enabled = b
	}
	str(EnvRedisService, &c.RedisService)
	redisSection := func() *redis.Config {
		if c.Redis == nil {
			c.Redis = &redis.Config{}
		}
		return c.Redis
	}
	etcdSection := func() *etcd.Config {
		if c.Etcd == nil {
			c.Etcd = &etcd.Config{}
		}
		return c.Etcd
	}
	if v, ok := lookup(EnvRedisURL); ok {
		redisSection().URL = v
	}
	if v, ok := lookup(EnvRedisAddrs); ok {
		redisSection().Addrs = list(v)
	}
	if v, ok := lookup(EnvRedisUsername); ok {
		redisSection().Username = v
	}
	if v, ok := lookup(EnvRedisPassword); ok {
		redisSection().Password = v
	}
	if v, ok := lookup(EnvRedisDB); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return backends.Invalid(EnvRedisDB, v, "not an integer")
		}
		redisSection().DB = n
	}
	if v, ok := lookup(EnvEtcdEndpoints); ok {
		etcdSection().Endpoints = list(v)
	}
	if v, ok := lookup(EnvEtcdUsername); ok {
		etcdSection().Username = v
	}
	if v, ok := lookup(EnvEtcdPassword); ok {
		etcdSection().Password = v
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvOpTimeout, &c.Components.OpTimeout}, {EnvConnectorInterval, &c.Connector.HealthInterval}} {
		if v, ok := lookup(d.name); ok {
			dur, err := time.ParseDuration(v)
			if err != nil {
				return backends.Invalid(d.name, v, "not a duration (e.g. 500ms, 2s)")
			}
			*d.dst = dur
		}
	}
	return nil
}
