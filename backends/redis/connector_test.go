package redis

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
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

func TestConnectorConnectAndHealth(t *testing.T) {
	r := harness.StartRedis(t)
	c, err := NewConnector(Config{URL: r.URL()}, nil)
	require.NoError(t, err)
	assert.Equal(t, "redis", c.Backend())
	assert.NotNil(t, c.Logger())
	assert.Nil(t, c.Client(), "no client before Connect")
	assert.ErrorIs(t, c.HealthCheck(t.Context()), backends.ErrUnavailable)

	require.NoError(t, c.Connect(t.Context()))
	require.NoError(t, c.Connect(t.Context()), "second Connect is a no-op")
	require.NotNil(t, c.Client())
	require.NoError(t, c.HealthCheck(t.Context()))

	require.NoError(t, c.Disconnect(t.Context()))
	require.NoError(t, c.Disconnect(t.Context()), "second Disconnect is a no-op")
	assert.Nil(t, c.Client())
	assert.ErrorIs(t, c.HealthCheck(t.Context()), backends.ErrClosed)

	// The actor layer reconnects a connector after a failure.
	require.NoError(t, c.Connect(t.Context()))
	require.NoError(t, c.HealthCheck(t.Context()))
	require.NoError(t, c.Disconnect(t.Context()))
}

func TestConnectorAddrsConfig(t *testing.T) {
	r := harness.StartRedis(t)
	c := kitConnect(t, Config{Addrs: []string{r.Addr()}, DB: 3, PoolSize: 4, MinIdleConns: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, HealthCheckTimeout: time.Second})
	require.NoError(t, c.HealthCheck(t.Context()))
	require.NoError(t, c.Client().Set(t.Context(), "k", "v", 0).Err())
	// DB 3 is really used: DB 0 does not see the key.
	db0 := kitConnect(t, Config{URL: r.URL()})
	assert.EqualValues(t, 0, db0.Client().Exists(t.Context(), "k").Val())
}

func TestConnectorServerDown(t *testing.T) {
	r, c := kitRedis(t)
	require.NoError(t, c.HealthCheck(t.Context()))

	r.Stop()
	start := time.Now()
	err := c.HealthCheck(t.Context())
	took := time.Since(start)
	t.Logf("health check with the server down answered in %v: %v", took, err)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, took, 2*time.Second)

	// A bounded caller deadline is honoured too.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	assert.ErrorIs(t, c.HealthCheck(ctx), backends.ErrUnavailable)
	assert.Less(t, time.Since(start), time.Second)

	r.Start()
	require.Eventually(t, func() bool { return c.HealthCheck(t.Context()) == nil },
		10*time.Second, 20*time.Millisecond, "healthy again after restart")
}

func TestConnectorConnectUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	c, err := NewConnector(Config{Addrs: []string{addr}}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err = c.Connect(ctx)
	t.Logf("connect to a closed port failed in %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, backends.ErrUnavailable)
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	assert.Nil(t, c.Client())

	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	assert.ErrorIs(t, c.Connect(canceled), context.Canceled)
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	ok := []string{"127.0.0.1:6379"}

	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"bad url scheme", Config{URL: "http://127.0.0.1:6379"}, "redis.url"},
		{"bad url port", Config{URL: "redis://127.0.0.1:notaport"}, "redis.url"},
		{"unix url", Config{URL: "unix:///tmp/redis.sock"}, "redis.url"},
		{"no endpoints", Config{}, "redis.addrs"},
		{"empty addr", Config{Addrs: []string{""}}, "redis.addrs[0]"},
		{"addr without port", Config{Addrs: []string{"127.0.0.1:6379", "localhost"}}, "redis.addrs[1]"},
		{"negative db", Config{Addrs: ok, DB: -1}, "redis.db"},
		{"db with cluster", Config{Addrs: []string{"a:1", "b:2"}, DB: 2}, "redis.db"},
		{"negative pool size", Config{Addrs: ok, PoolSize: -1}, "redis.pool_size"},
		{"negative min idle", Config{Addrs: ok, MinIdleConns: -3}, "redis.min_idle_conns"},
		{"max retries below -1", Config{Addrs: ok, MaxRetries: -2}, "redis.max_retries"},
		{"negative dial timeout", Config{Addrs: ok, DialTimeout: -time.Second}, "redis.dial_timeout"},
		{"negative read timeout", Config{Addrs: ok, ReadTimeout: -1}, "redis.read_timeout"},
		{"negative write timeout", Config{Addrs: ok, WriteTimeout: -1}, "redis.write_timeout"},
		{"negative pool timeout", Config{Addrs: ok, PoolTimeout: -1}, "redis.pool_timeout"},
		{"negative health timeout", Config{Addrs: ok, HealthCheckTimeout: -1}, "redis.health_check_timeout"},
		{"missing ca file", Config{Addrs: ok, TLS: &TLSConfig{CAFile: missing}}, "redis.tls.ca_file"},
		{"garbage ca file", Config{Addrs: ok, TLS: &TLSConfig{CAFile: garbage}}, "redis.tls.ca_file"},
		{"cert without key", Config{Addrs: ok, TLS: &TLSConfig{CertFile: garbage}}, "redis.tls.key_file"},
		{"key without cert", Config{Addrs: ok, TLS: &TLSConfig{KeyFile: garbage}}, "redis.tls.cert_file"},
		{"missing cert file", Config{Addrs: ok, TLS: &TLSConfig{CertFile: missing, KeyFile: garbage}}, "redis.tls.cert_file"},
		{"missing key file", Config{Addrs: ok, TLS: &TLSConfig{CertFile: garbage, KeyFile: missing}}, "redis.tls.key_file"},
		{"garbage key pair", Config{Addrs: ok, TLS: &TLSConfig{CertFile: garbage, KeyFile: garbage}}, "redis.tls.cert_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.ErrorIs(t, err, backends.ErrInvalidArgument)
			var ia *backends.InvalidArgumentError
			require.ErrorAs(t, err, &ia)
			assert.Equal(t, tc.field, ia.Field, "error: %v", err)
			assert.Contains(t, err.Error(), tc.field)
			_, err = NewConnector(tc.cfg, nil)
			assert.ErrorIs(t, err, backends.ErrInvalidArgument)
		})
	}

	t.Run("password is not echoed", func(t *testing.T) {
		err := Config{URL: "redis://user:s3cret@127.0.0.1:notaport"}.Validate()
		require.ErrorIs(t, err, backends.ErrInvalidArgument)
		assert.NotContains(t, err.Error(), "s3cret")
	})
	t.Run("valid configs", func(t *testing.T) {
		for _, cfg := range []Config{
			DefaultConfig(),
			{URL: "redis://user:pw@127.0.0.1:6379/2"},
			{URL: "rediss://127.0.0.1:6380"},
			{Addrs: []string{"a:1", "b:2", "c:3"}},
			{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 1},
		} {
			assert.NoError(t, cfg.Validate(), "%+v", cfg)
		}
		o, err := Config{URL: "rediss://u:p@127.0.0.1:6380/4"}.options()
		require.NoError(t, err)
		assert.NotNil(t, o.TLSConfig, "rediss enables TLS")
		assert.Equal(t, []string{"127.0.0.1:6380"}, o.Addrs)
		assert.Equal(t, 4, o.DB)
		assert.Equal(t, "u", o.Username)
		assert.Equal(t, defaultDialTimeout, o.DialTimeout)
	})
}

// TestConnectorTLS runs redis-server with TLS only (mutual TLS) and connects
// with the CA, certificate and key from files.
func TestConnectorTLS(t *testing.T) {
	dir := t.TempDir()
	files := kitWriteCerts(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tlsPort := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	harness.StartRedis(t, harness.WithRedisArgs(
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", files["server.crt"],
		"--tls-key-file", files["server.key"],
		"--tls-ca-cert-file", files["ca.crt"],
		"--tls-auth-clients", "yes",
	))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	c := kitConnect(t, Config{Addrs: []string{addr}, TLS: &TLSConfig{
		CAFile: files["ca.crt"], CertFile: files["client.crt"], KeyFile: files["client.key"],
		ServerName: "localhost",
	}})
	require.NoError(t, c.HealthCheck(t.Context()))

	// Without the client certificate the server refuses the handshake.
	bad, err := NewConnector(Config{Addrs: []string{addr}, TLS: &TLSConfig{CAFile: files["ca.crt"], ServerName: "localhost"}}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	assert.ErrorIs(t, bad.Connect(ctx), backends.ErrUnavailable)
}

// kitWriteCerts writes a CA, a server certificate for localhost/127.0.0.1
// and a client certificate, all PEM, and returns name → path.
func kitWriteCerts(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	write := func(name, typ string, der []byte) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		out[name] = p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baton test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write("ca.crt", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		require.NoError(t, err)
		write(name+".crt", "CERTIFICATE", der)
		kd, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		write(name+".key", "EC PRIVATE KEY", kd)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return out
}
