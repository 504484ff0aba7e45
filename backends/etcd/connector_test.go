package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/integration/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// connect returns a connected Connector for endpoints, disconnected at cleanup.
func connect(t *testing.T, cfg etcd.Config) *etcd.Connector {
	t.Helper()
	c, err := etcd.NewConnector(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, c.Connect(t.Context()))
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func TestConnectorHealthAcrossKill(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	c := connect(t, etcd.Config{Endpoints: srv.Endpoints()})
	assert.Equal(t, "etcd", c.Backend())
	require.NotNil(t, c.Client())
	require.NoError(t, c.HealthCheck(t.Context()))

	srv.Stop() // SIGKILL
	start := time.Now()
	err := c.HealthCheck(t.Context())
	down := time.Since(start)
	t.Logf("health check after kill: %v in %v", err, down)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.LessOrEqual(t, down, 2*time.Second, "health check must report a killed server within 2s")

	// A caller's shorter deadline wins, and is visible as such.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = c.HealthCheck(ctx)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), time.Second)

	srv.Start()
	start = time.Now()
	require.Eventually(t, func() bool { return c.HealthCheck(t.Context()) == nil },
		15*time.Second, 20*time.Millisecond, "healthy again after restart")
	t.Logf("healthy again %v after the server was ready", time.Since(start))
}

func TestConnectorLifecycle(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	c, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
	require.NoError(t, err)

	// Before Connect: unavailable, no client.
	assert.Nil(t, c.Client())
	require.ErrorIs(t, c.HealthCheck(t.Context()), backends.ErrUnavailable)

	require.NoError(t, c.Connect(t.Context()))
	cli := c.Client()
	require.NoError(t, c.Connect(t.Context()), "connect twice is a no-op")
	assert.Same(t, cli, c.Client())

	require.NoError(t, c.Disconnect(t.Context()))
	assert.Nil(t, c.Client())
	require.ErrorIs(t, c.HealthCheck(t.Context()), backends.ErrClosed)
	require.NoError(t, c.Disconnect(t.Context()), "disconnect twice is a no-op")

	// The actor layer reconnects a disconnected connector.
	require.NoError(t, c.Connect(t.Context()))
	require.NoError(t, c.HealthCheck(t.Context()))
	require.NoError(t, c.Disconnect(t.Context()))
}

func TestConnectUnreachable(t *testing.T) {
	addr := freeAddr(t) // nothing listens there
	c, err := etcd.NewConnector(etcd.Config{Endpoints: []string{addr}, DialTimeout: 500 * time.Millisecond,
		HealthCheckTimeout: 500 * time.Millisecond}, nil)
	require.NoError(t, err)
	start := time.Now()
	err = c.Connect(t.Context())
	t.Logf("connect to %s: %v in %v", addr, err, time.Since(start))
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Nil(t, c.Client())

}

// TestConnectSilentServer: a port that accepts TCP but never speaks gRPC
// keeps the connection "connecting"; Connect must still end within its bound
// or the caller's sooner deadline.
func TestConnectSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c, err := etcd.NewConnector(etcd.Config{Endpoints: []string{l.Addr().String()},
		DialTimeout: 300 * time.Millisecond, HealthCheckTimeout: 300 * time.Millisecond}, nil)
	require.NoError(t, err)
	start := time.Now()
	err = c.Connect(t.Context())
	t.Logf("connect to a silent server: %v in %v", err, time.Since(start))
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = c.Connect(ctx)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	require.NoError(t, l.Close())
	<-accepted
}

func TestComponentsFollowConnectorState(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	c, err := etcd.NewConnector(etcd.Config{Endpoints: srv.Endpoints()}, nil)
	require.NoError(t, err)
	ns := backends.Namespace{Env: "test"}
	cache, err := etcd.NewCache(c, backends.CacheOptions{Namespace: ns, Name: "c"})
	require.NoError(t, err)
	locker, err := etcd.NewLocker(c, backends.LockerOptions{Namespace: ns})
	require.NoError(t, err)
	defer locker.Close()
	elector, err := etcd.NewElector(c, backends.ElectorOptions{Namespace: ns})
	require.NoError(t, err)
	defer elector.Close()

	check := func(want error) {
		t.Helper()
		_, err := cache.Get(t.Context(), "k")
		require.ErrorIs(t, err, want)
		require.ErrorIs(t, cache.Set(t.Context(), "k", []byte("v"), time.Minute), want)
		res := cache.(backends.CacheBatcher).DoBatch(t.Context(), []backends.CacheOp{{Kind: backends.CacheOpGet, Key: "k"}})
		require.ErrorIs(t, res[0].Err, want)
		_, err = locker.TryAcquire(t.Context(), "l", backends.LockOptions{})
		require.ErrorIs(t, err, want)
		_, err = elector.Leader(t.Context(), "e")
		require.ErrorIs(t, err, want)
	}
	check(backends.ErrUnavailable) // not connected yet
	require.NoError(t, c.Connect(t.Context()))
	require.NoError(t, cache.Set(t.Context(), "k", []byte("v"), 0))
	require.NoError(t, c.Disconnect(t.Context()))
	check(backends.ErrClosed)
	require.NoError(t, c.Connect(t.Context()))
	v, err := cache.Get(t.Context(), "k")
	require.NoError(t, err, "components follow a reconnect")
	assert.Equal(t, []byte("v"), v)

	// A killed server is reported as unavailable within the request bound,
	// not by hanging until the caller's (here: absent) deadline.
	srv.Stop()
	start := time.Now()
	_, err = cache.Get(context.Background(), "k")
	require.ErrorIs(t, err, backends.ErrUnavailable)
	t.Logf("cache get with the server killed: %v after %v", err, time.Since(start))
	require.NoError(t, c.Disconnect(t.Context()))
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	ca, cert, key := writeCert(t, dir)

	ok := etcd.Config{Endpoints: []string{"127.0.0.1:2379"}}
	with := func(f func(*etcd.Config)) etcd.Config {
		c := ok
		f(&c)
		return c
	}
	cases := []struct {
		name  string
		cfg   etcd.Config
		field string // "" = valid
	}{
		{"valid host:port", ok, ""},
		{"valid urls", with(func(c *etcd.Config) {
			c.Endpoints = []string{"http://127.0.0.1:2379", "https://[::1]:2379", "unix:///tmp/etcd.sock"}
		}), ""},
		{"valid tls", with(func(c *etcd.Config) {
			c.TLS = &etcd.TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "etcd"}
		}), ""},
		{"valid auth", with(func(c *etcd.Config) { c.Username, c.Password = "root", "secret" }), ""},
		{"no endpoints", with(func(c *etcd.Config) { c.Endpoints = nil }), "etcd.endpoints"},
		{"empty endpoint", with(func(c *etcd.Config) { c.Endpoints = []string{"127.0.0.1:2379", ""} }), "etcd.endpoints[1]"},
		{"no port", with(func(c *etcd.Config) { c.Endpoints = []string{"localhost"} }), "etcd.endpoints[0]"},
		{"bad port", with(func(c *etcd.Config) { c.Endpoints = []string{"localhost:99999"} }), "etcd.endpoints[0]"},
		{"no host", with(func(c *etcd.Config) { c.Endpoints = []string{":2379"} }), "etcd.endpoints[0]"},
		{"bad scheme", with(func(c *etcd.Config) { c.Endpoints = []string{"ftp://127.0.0.1:2379"} }), "etcd.endpoints[0]"},
		{"url path", with(func(c *etcd.Config) { c.Endpoints = []string{"http://127.0.0.1:2379/v3"} }), "etcd.endpoints[0]"},
		{"whitespace", with(func(c *etcd.Config) { c.Endpoints = []string{" 127.0.0.1:2379"} }), "etcd.endpoints[0]"},
		{"negative dial timeout", with(func(c *etcd.Config) { c.DialTimeout = -time.Second }), "etcd.dial_timeout"},
		{"negative keep-alive time", with(func(c *etcd.Config) { c.DialKeepAliveTime = -1 }), "etcd.dial_keep_alive_time"},
		{"negative keep-alive timeout", with(func(c *etcd.Config) { c.DialKeepAliveTimeout = -1 }), "etcd.dial_keep_alive_timeout"},
		{"negative request timeout", with(func(c *etcd.Config) { c.RequestTimeout = -1 }), "etcd.request_timeout"},
		{"negative health timeout", with(func(c *etcd.Config) { c.HealthCheckTimeout = -1 }), "etcd.health_check_timeout"},
		{"password without user", with(func(c *etcd.Config) { c.Password = "x" }), "etcd.username"},
		{"user without password", with(func(c *etcd.Config) { c.Username = "x" }), "etcd.password"},
		{"missing ca", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{CAFile: missing} }), "etcd.tls.ca_file"},
		{"ca not pem", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{CAFile: notPEM} }), "etcd.tls.ca_file"},
		{"cert without key", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{CertFile: cert} }), "etcd.tls.key_file"},
		{"key without cert", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{KeyFile: key} }), "etcd.tls.cert_file"},
		{"missing key", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{CertFile: cert, KeyFile: missing} }), "etcd.tls.key_file"},
		{"bad key pair", with(func(c *etcd.Config) { c.TLS = &etcd.TLSConfig{CertFile: cert, KeyFile: notPEM} }), "etcd.tls.cert_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errV := tc.cfg.Validate()
			_, errN := etcd.NewConnector(tc.cfg, nil)
			if tc.field == "" {
				require.NoError(t, errV)
				require.NoError(t, errN)
				return
			}
			for _, err := range []error{errV, errN} {
				require.ErrorIs(t, err, backends.ErrInvalidArgument)
				var inv *backends.InvalidArgumentError
				require.ErrorAs(t, err, &inv)
				assert.Equal(t, tc.field, inv.Field, "error: %v", err)
				assert.Contains(t, err.Error(), tc.field)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := etcd.DefaultConfig()
	require.NoError(t, c.Validate())
	assert.Equal(t, 2*time.Second, c.DialTimeout)
	assert.Equal(t, 2*time.Second, c.HealthCheckTimeout)
	assert.Equal(t, 5*time.Second, c.RequestTimeout, "the documented default")
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// writeCert writes a self-signed CA certificate (also used as the client
// certificate) and its key as PEM files.
func writeCert(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcd"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	cert = filepath.Join(dir, "cert.pem")
	key = filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, cert, key
}
