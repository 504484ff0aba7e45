package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/baton-go/baton/backends"
)

// Defaults applied by Config for zero fields.
const (
	defaultDialTimeout        = 2 * time.Second
	defaultReadTimeout        = 3 * time.Second
	defaultHealthCheckTimeout = 2 * time.Second
	// defaultMaxRetries disables go-redis' automatic retries: Baton's
	// writes are Lua scripts, and resending one whose reply was lost could
	// apply it twice (a second config version, a lock taken by ourselves
	// and then reported as held). Failures surface as ErrUnavailable and
	// the caller — or the connector supervisor — decides.
	defaultMaxRetries = -1
)

// TLSConfig enables TLS from PEM files. A nil *TLSConfig with a redis:// URL
// (or plain Addrs) means no TLS; rediss:// turns TLS on with the system roots.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs that verify the server. Default: system roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (mutual TLS);
	// set both or neither. Default: no client certificate.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	// Default: the host of the address dialed.
	ServerName string `yaml:"server_name" json:"server_name"`
	// InsecureSkipVerify disables server certificate checks (tests only).
	// Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// Config describes how to reach Redis. Exactly one topology is chosen:
// MasterName set → Sentinel failover (Addrs are the sentinels); several
// Addrs → Redis Cluster; otherwise a single server.
type Config struct {
	// URL is a redis:// or rediss:// URL (rediss enables TLS). When set, its
	// address, DB, username and password replace Addrs, DB, Username and
	// Password. Default: empty (use Addrs).
	URL string `yaml:"url" json:"url"`
	// Addrs are host:port addresses: one = standalone, several = cluster,
	// with MasterName = the Sentinel addresses. Required unless URL is set.
	Addrs []string `yaml:"addrs" json:"addrs"`
	// MasterName selects Sentinel failover for this master. Default: empty.
	MasterName string `yaml:"master_name" json:"master_name"`
	// Username and Password authenticate (ACL user; empty user = "default").
	// Default: no authentication.
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	// Default: none.
	SentinelUsername string `yaml:"sentinel_username" json:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password" json:"sentinel_password"`
	// DB is the database number; must be 0 with Redis Cluster. Default: 0.
	DB int `yaml:"db" json:"db"`
	// TLS enables TLS from files. Default: nil (no TLS unless rediss://).
	TLS *TLSConfig `yaml:"tls" json:"tls"`
	// PoolSize is the maximum number of connections per server.
	// Default: 10 per GOMAXPROCS (go-redis default).
	PoolSize int `yaml:"pool_size" json:"pool_size"`
	// MinIdleConns keeps this many idle connections open. Default: 0.
	MinIdleConns int `yaml:"min_idle_conns" json:"min_idle_conns"`
	// MaxRetries is how often go-redis resends a command that failed on the
	// network; -1 disables retries. Default: -1, because a resent script
	// whose first reply was lost would run twice. 0 means the default.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// DialTimeout bounds establishing one connection. Default: 2s.
	DialTimeout time.Duration `yaml:"dial_timeout" json:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one socket read/write.
	// Default: 3s; WriteTimeout defaults to ReadTimeout.
	ReadTimeout  time.Duration `yaml:"read_timeout" json:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout" json:"write_timeout"`
	// PoolTimeout bounds waiting for a free connection when the pool is
	// exhausted. Default: ReadTimeout + 1s.
	PoolTimeout time.Duration `yaml:"pool_timeout" json:"pool_timeout"`
	// HealthCheckTimeout bounds one HealthCheck (and the PING of Connect).
	// Default: 2s.
	HealthCheckTimeout time.Duration `yaml:"health_check_timeout" json:"health_check_timeout"`
}

// DefaultConfig is a standalone server on 127.0.0.1:6379 with every default
// spelled out.
func DefaultConfig() Config {
	return Config{
		Addrs:              []string{"127.0.0.1:6379"},
		MaxRetries:         defaultMaxRetries,
		DialTimeout:        defaultDialTimeout,
		ReadTimeout:        defaultReadTimeout,
		WriteTimeout:       defaultReadTimeout,
		PoolTimeout:        defaultReadTimeout + time.Second,
		HealthCheckTimeout: defaultHealthCheckTimeout,
	}
}

// Validate reports the first invalid field as an ErrInvalidArgument that
// names the field and the value. TLS files are read and parsed here so a bad
// path fails at construction, not at the first dial.
func (c Config) Validate() error {
	_, err := c.options()
	return err
}

// options validates c and builds the go-redis options with defaults applied.
func (c Config) options() (*goredis.UniversalOptions, error) {
	o := &goredis.UniversalOptions{
		Addrs:            append([]string(nil), c.Addrs...),
		MasterName:       c.MasterName,
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
	}
	if c.URL != "" {
		u, err := goredis.ParseURL(c.URL)
		if err != nil {
			// url.Error repeats the whole URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, backends.Invalid("redis.url", redactURL(c.URL), lowerFirst(err.Error()))
		}
		if u.Network != "tcp" {
			return nil, backends.Invalid("redis.url", redactURL(c.URL), "scheme must be redis:// or rediss://")
		}
		o.Addrs = []string{u.Addr}
		o.DB = u.DB
		if u.Username != "" {
			o.Username = u.Username
		}
		if u.Password != "" {
			o.Password = u.Password
		}
		o.TLSConfig = u.TLSConfig
	}
	if len(o.Addrs) == 0 {
		return nil, backends.Invalid("redis.addrs", "", "must not be empty (set url or addrs)")
	}
	for i, a := range o.Addrs {
		field := fmt.Sprintf("redis.addrs[%d]", i)
		if a == "" {
			return nil, backends.Invalid(field, a, "must not be empty")
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, backends.Invalid(field, a, "must be host:port")
		}
	}
	cluster := c.MasterName == "" && len(o.Addrs) > 1
	switch {
	case o.DB < 0:
		return nil, backends.Invalid("redis.db", o.DB, "must not be negative")
	case o.DB != 0 && cluster:
		return nil, backends.Invalid("redis.db", o.DB, "must be 0 with redis cluster (several addrs)")
	case c.PoolSize < 0:
		return nil, backends.Invalid("redis.pool_size", c.PoolSize, "must not be negative")
	case c.MinIdleConns < 0:
		return nil, backends.Invalid("redis.min_idle_conns", c.MinIdleConns, "must not be negative")
	case c.MaxRetries < -1:
		return nil, backends.Invalid("redis.max_retries", c.MaxRetries, "must be -1 (no retries) or more")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"redis.dial_timeout", c.DialTimeout},
		{"redis.read_timeout", c.ReadTimeout},
		{"redis.write_timeout", c.WriteTimeout},
		{"redis.pool_timeout", c.PoolTimeout},
		{"redis.health_check_timeout", c.HealthCheckTimeout},
	} {
		if d.v < 0 {
			return nil, backends.Invalid(d.field, d.v, "must not be negative")
		}
	}
	if c.TLS != nil {
		tc, err := c.TLS.build(o.TLSConfig)
		if err != nil {
			return nil, err
		}
		o.TLSConfig = tc
	}

	o.PoolSize = c.PoolSize
	o.MinIdleConns = c.MinIdleConns
	o.MaxRetries = c.MaxRetries
	if o.MaxRetries == 0 {
		o.MaxRetries = defaultMaxRetries
	}
	o.DialTimeout = orDefault(c.DialTimeout, defaultDialTimeout)
	o.ReadTimeout = orDefault(c.ReadTimeout, defaultReadTimeout)
	o.WriteTimeout = orDefault(c.WriteTimeout, o.ReadTimeout)
	o.PoolTimeout = orDefault(c.PoolTimeout, o.ReadTimeout+time.Second)
	// One dial attempt per command try: the command-level retries already
	// retry, and stacking both makes a dead server slow to report.
	o.DialerRetries = 1
	// Deadlines of the caller's context bound every command.
	o.ContextTimeoutEnabled = true
	// Maintenance notifications only exist on Redis Enterprise / Cloud; the
	// probe is noise elsewhere.
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o, nil
}

func (t *TLSConfig) build(base *tls.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		tc = base.Clone()
	}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	tc.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // opt-in, documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, backends.Invalid("redis.tls.ca_file", t.CAFile, "cannot read: "+err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, backends.Invalid("redis.tls.ca_file", t.CAFile, "no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "":
		return nil, backends.Invalid("redis.tls.cert_file", t.CertFile, "must be set together with key_file")
	case t.KeyFile == "":
		return nil, backends.Invalid("redis.tls.key_file", t.KeyFile, "must be set together with cert_file")
	default:
		if _, err := os.Stat(t.CertFile); err != nil {
			return nil, backends.Invalid("redis.tls.cert_file", t.CertFile, "cannot read: "+err.Error())
		}
		if _, err := os.Stat(t.KeyFile); err != nil {
			return nil, backends.Invalid("redis.tls.key_file", t.KeyFile, "cannot read: "+err.Error())
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, backends.Invalid("redis.tls.cert_file", t.CertFile, "invalid key pair: "+err.Error())
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// redactURL hides a password before a URL appears in an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+('a'-'A')) + s[1:]
}

// Connector owns the one go-redis client shared by every Redis component of a
// node. Components fetch the client at call time, so the connector can be
// disconnected and connected again underneath them.
type Connector struct {
	cfg    Config
	opts   *goredis.UniversalOptions
	logger *slog.Logger

	lifeMu sync.Mutex // serializes Connect and Disconnect

	mu     sync.RWMutex
	cl     goredis.UniversalClient // nil unless connected
	closed bool                    // Disconnect was called after the last Connect
}

var _ backends.Connector = (*Connector)(nil)

// NewConnector validates cfg and returns an unconnected Connector. A nil
// logger discards. go-redis's own (process-wide) internal log is routed to
// the most recent non-nil logger given here, at debug level.
func NewConnector(cfg Config, logger *slog.Logger) (*Connector, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	} else {
		redisLog.logger.Store(logger)
	}
	installRedisLogger()
	return &Connector{cfg: cfg, opts: opts, logger: logger}, nil
}

// Backend returns "redis".
func (c *Connector) Backend() string { return backends.BackendRedis }

// Logger returns the connector's logger (never nil).
func (c *Connector) Logger() *slog.Logger { return c.logger }

// Client returns the go-redis client, or nil before Connect and after
// Disconnect.
func (c *Connector) Client() goredis.UniversalClient {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cl
}

// Connect creates the client and PINGs the server within ctx (and at most
// DialTimeout + HealthCheckTimeout). An unreachable server is ErrUnavailable;
// refused credentials (NOAUTH, WRONGPASS) are ErrUnauthenticated and a
// database index the server does not have is ErrInvalidArgument naming
// redis.db; the half-made client is closed again. Connect on a connected Connector is a
// no-op; Connect after Disconnect connects anew.
func (c *Connector) Connect(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.Client() != nil {
		return nil
	}
	c.mu.RLock()
	opts := *c.opts
	c.mu.RUnlock()
	cl := goredis.NewUniversalClient(&opts)
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+c.healthTimeout())
	defer cancel()
	if err := cl.Ping(pctx).Err(); err != nil {
		_ = cl.Close()
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("redis: connect: %w", ctx.Err())
		}
		return c.connErr("redis: connect "+c.target(), err)
	}
	c.mu.Lock()
	c.cl, c.closed = cl, false
	c.mu.Unlock()
	c.logger.Debug("redis connected", "addrs", opts.Addrs, "master", opts.MasterName)
	return nil
}

// Disconnect closes the client. Components then fail with ErrClosed until
// the next Connect. Disconnect on a disconnected Connector is a no-op.
func (c *Connector) Disconnect(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.mu.Lock()
	cl := c.cl
	c.cl, c.closed = nil, true
	c.mu.Unlock()
	if cl == nil {
		return nil
	}
	c.logger.Debug("redis disconnected", "target", c.target())
	if err := cl.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("redis: disconnect: %w", err)
	}
	return nil
}

// Retarget points the connector at other addresses (a Redis endpoint that
// moved: runtime resolves endpoints given as service names through
// discovery and follows them). It connects a new client to addrs, PINGs it
// within ctx and only then swaps it in and closes the old one, so a bad
// address leaves the connector as it was. Components pick up the new client
// on their next call. Not valid with a URL, Sentinel or Cluster topology
// change; the other settings (auth, TLS, timeouts) are kept.
func (c *Connector) Retarget(ctx context.Context, addrs []string) error {
	if len(addrs) == 0 {
		return backends.Invalid("redis.addrs", "", "must not be empty")
	}
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.mu.RLock()
	opts := *c.opts
	c.mu.RUnlock()
	opts.Addrs = append([]string(nil), addrs...)
	cl := goredis.NewUniversalClient(&opts)
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+c.healthTimeout())
	defer cancel()
	if err := cl.Ping(pctx).Err(); err != nil {
		_ = cl.Close()
		return c.connErr(fmt.Sprintf("redis: retarget %v", addrs), err)
	}
	c.mu.Lock()
	old := c.cl
	c.cl, c.closed, c.opts = cl, false, &opts
	c.mu.Unlock()
	c.logger.Info("redis retargeted", "addrs", addrs)
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// HealthCheck PINGs the server within ctx and HealthCheckTimeout: nil when it
// answers, ErrUnavailable when it does not (also when the deadline passes
// first — the error then also matches context.DeadlineExceeded), ErrClosed
// after Disconnect, ErrUnavailable before Connect. A server that refuses
// the credentials or the database index (as when it restarted with a new
// password) is ErrUnauthenticated or ErrInvalidArgument, as for Connect.
func (c *Connector) HealthCheck(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, c.healthTimeout())
	defer cancel()
	err = cl.Ping(hctx).Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("redis: health check: %w", ctx.Err())
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("redis: health check: %w", backends.ErrClosed)
	}
	return c.connErr("redis: health check "+c.target(), err)
}

// connErr classifies a failed PING of Connect, Retarget or HealthCheck: a
// refusal of the settings (credentials, database index) is
// ErrUnauthenticated or ErrInvalidArgument, anything else ErrUnavailable.
func (c *Connector) connErr(op string, err error) error {
	c.mu.RLock()
	db := c.opts.DB
	c.mu.RUnlock()
	switch {
	case isDBRefusal(err):
		return fmt.Errorf("%s: %w", op, backends.Invalid("redis.db", db, "refused by the server: "+err.Error()))
	case isAuthRefusal(err):
		return backends.Unauthenticated(op, err)
	}
	return backends.Unavailable(op, err)
}

func (c *Connector) healthTimeout() time.Duration {
	return orDefault(c.cfg.HealthCheckTimeout, defaultHealthCheckTimeout)
}

// target names the servers in error messages.
func (c *Connector) target() string {
	c.mu.RLock()
	opts := c.opts
	c.mu.RUnlock()
	if opts.MasterName != "" {
		return fmt.Sprintf("(master %s via %v)", opts.MasterName, opts.Addrs)
	}
	return fmt.Sprint(opts.Addrs)
}

// redisLog forwards go-redis's global internal logger to an injected slog
// logger; until one is injected, the messages are dropped.
var redisLog struct {
	once   sync.Once
	logger atomic.Pointer[slog.Logger]
}

type redisLogAdapter struct{}

func (redisLogAdapter) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.logger.Load(); l != nil {
		l.DebugContext(ctx, fmt.Sprintf(format, v...), "source", "go-redis")
	}
}

func installRedisLogger() {
	redisLog.once.Do(func() { goredis.SetLogger(redisLogAdapter{}) })
}
