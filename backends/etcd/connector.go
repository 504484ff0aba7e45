package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// Defaults applied by Config.WithDefaults.
const (
	defaultDialTimeout          = 2 * time.Second
	defaultDialKeepAliveTime    = 10 * time.Second
	defaultDialKeepAliveTimeout = 3 * time.Second
	defaultRequestTimeout       = 5 * time.Second
	defaultHealthCheckTimeout   = 2 * time.Second
)

// reconnectBackoff paces gRPC's reconnection attempts after a connection
// broke. gRPC's default grows to 120s, so after an outage of a few seconds
// the client could stay disconnected long after etcd is back; capping it at
// 2s bounds that delay for the price of one dial attempt per 2s while etcd
// is down.
var reconnectBackoff = grpcbackoff.Config{
	BaseDelay:  100 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   2 * time.Second,
}

// healthKey is read by HealthCheck and Connect, like etcdctl endpoint health.
const healthKey = "health"

// TLSConfig enables TLS to etcd. File contents are read when the connector
// is created (and by Validate), so a bad path fails early.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs that sign the server certificate.
	// Default: the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM), for
	// mutual TLS. Both or neither. Default: no client certificate.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	// Default: the endpoint host.
	ServerName string `yaml:"server_name" json:"server_name"`
	// InsecureSkipVerify disables server certificate checks (tests only).
	// Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// Config says how to reach etcd. The zero value plus Endpoints is usable.
type Config struct {
	// Endpoints are the etcd client URLs: "host:port", "http://host:port",
	// "https://host:port" (or unix://, unixs://). Required.
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// Username and Password authenticate with etcd's auth (both or
	// neither). Default: no authentication.
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password"`
	// TLS enables TLS. Default: nil, plain TCP.
	TLS *TLSConfig `yaml:"tls" json:"tls"`
	// DialTimeout bounds establishing a connection (and authenticating).
	// Default: 2s.
	DialTimeout time.Duration `yaml:"dial_timeout" json:"dial_timeout"`
	// DialKeepAliveTime is the interval of gRPC keep-alive pings that detect
	// a dead connection. Default: 10s (etcd refuses pings more often than
	// every 5s).
	DialKeepAliveTime time.Duration `yaml:"dial_keep_alive_time" json:"dial_keep_alive_time"`
	// DialKeepAliveTimeout is how long a keep-alive ping may go unanswered
	// before the connection is closed. Default: 3s.
	DialKeepAliveTimeout time.Duration `yaml:"dial_keep_alive_timeout" json:"dial_keep_alive_timeout"`
	// RequestTimeout bounds every single round trip a component makes when
	// the caller's ctx has no sooner deadline. Waiting for a lock or a
	// leadership is not one round trip and is bounded by ctx only.
	// Default: 5s.
	RequestTimeout time.Duration `yaml:"request_timeout" json:"request_timeout"`
	// HealthCheckTimeout bounds HealthCheck (and the check in Connect).
	// Default: 2s.
	HealthCheckTimeout time.Duration `yaml:"health_check_timeout" json:"health_check_timeout"`
}

// DefaultConfig returns a Config for a local etcd on 127.0.0.1:2379 with
// every default filled in.
func DefaultConfig() Config {
	return Config{Endpoints: []string{"127.0.0.1:2379"}}.WithDefaults()
}

// WithDefaults returns a copy with zero durations replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.DialKeepAliveTime == 0 {
		c.DialKeepAliveTime = defaultDialKeepAliveTime
	}
	if c.DialKeepAliveTimeout == 0 {
		c.DialKeepAliveTimeout = defaultDialKeepAliveTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.HealthCheckTimeout == 0 {
		c.HealthCheckTimeout = defaultHealthCheckTimeout
	}
	return c
}

// Validate checks the configuration without contacting etcd; TLS files are
// read and parsed. Errors match backends.ErrInvalidArgument and name the
// field (e.g. "etcd.endpoints[1]", "etcd.tls.ca_file") and the value.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return backends.Invalid("etcd.endpoints", "", "must list at least one endpoint")
	}
	for i, ep := range c.Endpoints {
		if err := validateEndpoint(fmt.Sprintf("etcd.endpoints[%d]", i), ep); err != nil {
			return err
		}
	}
	if (c.Username == "") != (c.Password == "") {
		if c.Username == "" {
			return backends.Invalid("etcd.username", c.Username, "must be set when a password is set")
		}
		return backends.Invalid("etcd.password", "", "must be set when a username is set")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"etcd.dial_timeout", c.DialTimeout},
		{"etcd.dial_keep_alive_time", c.DialKeepAliveTime},
		{"etcd.dial_keep_alive_timeout", c.DialKeepAliveTimeout},
		{"etcd.request_timeout", c.RequestTimeout},
		{"etcd.health_check_timeout", c.HealthCheckTimeout},
	} {
		if d.v < 0 {
			return backends.Invalid(d.field, d.v, "must not be negative")
		}
	}
	if c.TLS != nil {
		if _, err := c.TLS.build(); err != nil {
			return err
		}
	}
	return nil
}

// validateEndpoint accepts host:port and http(s)/unix(s) URLs.
func validateEndpoint(field, ep string) error {
	if ep == "" {
		return backends.Invalid(field, ep, "must not be empty")
	}
	if strings.TrimSpace(ep) != ep || strings.ContainsAny(ep, " \t\r\n") {
		return backends.Invalid(field, ep, "must not contain whitespace")
	}
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return backends.Invalid(field, ep, "not a valid URL")
		}
		switch u.Scheme {
		case "unix", "unixs":
			if u.Host == "" && u.Path == "" {
				return backends.Invalid(field, ep, "unix endpoint without a path")
			}
			return nil
		case "http", "https":
		default:
			return backends.Invalid(field, ep, `scheme must be http, https, unix or unixs`)
		}
		if u.Path != "" && u.Path != "/" {
			return backends.Invalid(field, ep, "must not have a path")
		}
		return validateHostPort(field, ep, u.Host)
	}
	return validateHostPort(field, ep, ep)
}

func validateHostPort(field, ep, hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return backends.Invalid(field, ep, "want host:port")
	}
	if host == "" {
		return backends.Invalid(field, ep, "missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return backends.Invalid(field, ep, "port must be a number in 1..65535")
	}
	return nil
}

// build loads the files into a *tls.Config.
func (t *TLSConfig) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, backends.Invalid("etcd.tls.ca_file", t.CAFile, "cannot read: "+errText(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, backends.Invalid("etcd.tls.ca_file", t.CAFile, "no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "":
		return nil, backends.Invalid("etcd.tls.cert_file", t.CertFile, "must be set when key_file is set")
	case t.KeyFile == "":
		return nil, backends.Invalid("etcd.tls.key_file", t.KeyFile, "must be set when cert_file is set")
	default:
		if _, err := os.Stat(t.CertFile); err != nil {
			return nil, backends.Invalid("etcd.tls.cert_file", t.CertFile, "cannot read: "+errText(err))
		}
		if _, err := os.Stat(t.KeyFile); err != nil {
			return nil, backends.Invalid("etcd.tls.key_file", t.KeyFile, "cannot read: "+errText(err))
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, backends.Invalid("etcd.tls.cert_file", t.CertFile, "cannot load key pair: "+errText(err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// errText shortens an os error to its reason ("no such file or directory").
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Connector owns the one *clientv3.Client shared by every etcd component of
// a node. It is safe for concurrent use. After Disconnect, Connect may be
// called again to build a fresh client (the actor layer reconnects this way);
// components fetch the client at call time, so they follow.
type Connector struct {
	cfg    Config
	tls    *tls.Config
	logger *slog.Logger
	leases *leaseBuckets // cache TTL leases shared per expiry bucket

	// lifecycle serializes Connect and Disconnect; mu guards the fields
	// below and is never held across a round trip.
	lifecycle sync.Mutex
	mu        sync.RWMutex
	cli       *clientv3.Client
	closed    bool
}

var _ backends.Connector = (*Connector)(nil)

// NewConnector validates cfg (after defaults) and returns an unconnected
// Connector. A nil logger discards everything; etcd's own zap logger is
// always silenced.
func NewConnector(cfg Config, logger *slog.Logger) (*Connector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Connector{cfg: cfg, logger: logger, leases: newLeaseBuckets()}
	if cfg.TLS != nil {
		t, err := cfg.TLS.build()
		if err != nil {
			return nil, err
		}
		c.tls = t
	}
	return c, nil
}

// Backend returns "etcd".
func (c *Connector) Backend() string { return backends.BackendEtcd }

// Config returns the configuration in use, defaults applied.
func (c *Connector) Config() Config { return c.cfg }

// Logger returns the injected logger (a discarding one by default).
func (c *Connector) Logger() *slog.Logger { return c.logger }

// Client returns the live client, or nil before Connect and after
// Disconnect.
func (c *Connector) Client() *clientv3.Client {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cli
}

// Connect builds the client and checks that etcd answers a read within ctx
// and at most max(DialTimeout, HealthCheckTimeout); ErrUnavailable
// otherwise (the client is then closed again). Credentials the server
// refuses (a wrong user or password, or none while the server has
// authentication enabled) are ErrUnauthenticated. Connect on a connected
// Connector is a no-op.
func (c *Connector) Connect(ctx context.Context) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.Client() != nil {
		return nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.cfg.Endpoints,
		DialTimeout:          c.cfg.DialTimeout,
		DialKeepAliveTime:    c.cfg.DialKeepAliveTime,
		DialKeepAliveTimeout: c.cfg.DialKeepAliveTimeout,
		TLS:                  c.tls,
		Username:             c.cfg.Username,
		Password:             c.cfg.Password,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           reconnectBackoff,
			MinConnectTimeout: c.cfg.DialTimeout,
		})},
	})
	if err != nil {
		return c.connectErr(ctx, err)
	}
	bound := max(c.cfg.DialTimeout, c.cfg.HealthCheckTimeout)
	vctx, cancel := context.WithTimeout(ctx, bound)
	err = probe(vctx, cli)
	cancel()
	if err != nil {
		_ = cli.Close()
		return c.connectErr(ctx, err)
	}
	c.mu.Lock()
	c.cli = cli
	c.closed = false
	c.mu.Unlock()
	c.logger.Debug("etcd connected", "endpoints", c.cfg.Endpoints)
	return nil
}

func (c *Connector) connectErr(ctx context.Context, err error) error {
	if isAuthRefusal(err) {
		op := "etcd: connect without credentials"
		if c.cfg.Username != "" {
			op = fmt.Sprintf("etcd: connect as %q", c.cfg.Username)
		}
		return backends.Unauthenticated(op, rpctypes.Error(err))
	}
	c.logger.Debug("etcd connect failed", "endpoints", c.cfg.Endpoints, "error", err)
	if ctx.Err() != nil {
		// Both hold: the server did not answer, and the caller's ctx ended.
		return backends.Unavailable("etcd: connect", ctx.Err())
	}
	return backends.Unavailable("etcd: connect", err)
}

// probe does one linearizable read. Permission denied still proves that the
// server is up and answering (a user may lack access to the probe key).
//
// clientv3 waits for a ready connection until ctx ends, so a probe against a
// killed server would always take the whole timeout. The probe therefore also
// follows the connection state and gives up as soon as every endpoint has
// failed to connect (TransientFailure): that takes milliseconds when the
// server's port refuses connections.
//
// A connection already in TransientFailure waits out gRPC's reconnect
// backoff (up to reconnectBackoff.MaxDelay) before it dials again. The probe
// does not wait: it asks gRPC to dial now and gives that attempt up to
// reconnectProbeWait to succeed, so a server that came back is found by
// the first probe after its restart. (gRPC keeps reporting
// TransientFailure while it retries, until a connection is ready.)
func probe(ctx context.Context, cli *clientv3.Client) error {
	cc := cli.ActiveConnection()
	if cc != nil && cc.GetState() == connectivity.TransientFailure {
		cc.ResetConnectBackoff()
		wctx, cancel := context.WithTimeout(ctx, reconnectProbeWait)
		ready := cc.WaitForStateChange(wctx, connectivity.TransientFailure)
		cancel()
		if !ready {
			return errNoEndpoint
		}
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cc != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			s := cc.GetState()
			for s != connectivity.TransientFailure {
				if !cc.WaitForStateChange(pctx, s) {
					return
				}
				s = cc.GetState()
			}
			select {
			case <-stop:
			default:
				cancel(errNoEndpoint)
			}
		}()
	}
	_, err := cli.Get(pctx, healthKey, clientv3.WithCountOnly())
	if err == nil || errors.Is(rpctypes.Error(err), rpctypes.ErrPermissionDenied) {
		return nil
	}
	if cause := context.Cause(pctx); errors.Is(cause, errNoEndpoint) && ctx.Err() == nil {
		return errNoEndpoint
	}
	return err
}

// reconnectProbeWait bounds how long a probe waits for the connection it
// asked gRPC to make: ample for a server that is back (a loopback or LAN
// dial takes milliseconds), short enough that a dead one is reported soon.
const reconnectProbeWait = 500 * time.Millisecond

// errNoEndpoint: every endpoint failed its last connection attempt.
var errNoEndpoint = errors.New("no reachable endpoint")

// Disconnect closes the client: watches, keep-alives and sessions built on it
// end, so leases of this node expire after their TTL. Later calls are no-ops;
// HealthCheck then returns ErrClosed until Connect is called again.
func (c *Connector) Disconnect(ctx context.Context) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.Lock()
	cli := c.cli
	c.cli = nil
	c.closed = true
	c.mu.Unlock()
	if cli == nil {
		return nil
	}
	// Close cancels the client's context and waits for its goroutines;
	// the "context canceled" it reports is the normal outcome.
	if err := cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		c.logger.Debug("etcd close", "error", err)
	}
	c.logger.Debug("etcd disconnected")
	return nil
}

// HealthCheck does one bounded linearizable read (HealthCheckTimeout, or
// ctx's sooner deadline). nil when etcd answers; ErrUnavailable when it does
// not, at once when every endpoint's connection has already failed (after
// asking gRPC to dial again at once, so that a server that is back is seen
// by the next check rather than after gRPC's reconnect backoff);
// ErrUnauthenticated when it refuses the credentials; ErrClosed after
// Disconnect.
func (c *Connector) HealthCheck(ctx context.Context) error {
	cli, err := c.client()
	if err != nil {
		return fmt.Errorf("etcd: health check: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HealthCheckTimeout)
	defer cancel()
	if err := probe(hctx, cli); err != nil {
		if c.Client() != cli {
			return fmt.Errorf("etcd: health check: %w", backends.ErrClosed)
		}
		if ctx.Err() != nil {
			return backends.Unavailable("etcd: health check", ctx.Err())
		}
		if isAuthRefusal(err) {
			return backends.Unauthenticated("etcd: health check", rpctypes.Error(err))
		}
		return backends.Unavailable("etcd: health check", err)
	}
	return nil
}
