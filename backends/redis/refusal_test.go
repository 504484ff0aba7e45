package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

// TestConnectorRefusals: a server that refuses the credentials or the
// database index answers at once, and the connector says which — never
// ErrUnavailable, which would send the caller (and the connector
// supervisor) into retrying what cannot succeed.
func TestConnectorRefusals(t *testing.T) {
	r := harness.StartRedis(t, harness.WithRedisPassword("secret"))
	for _, tc := range []struct {
		name  string
		cfg   Config
		is    error
		field string
	}{
		{"no password (NOAUTH)", Config{Addrs: []string{r.Addr()}}, backends.ErrUnauthenticated, ""},
		{"wrong password (WRONGPASS)", Config{Addrs: []string{r.Addr()}, Password: "wrong"}, backends.ErrUnauthenticated, ""},
		{"unknown user", Config{Addrs: []string{r.Addr()}, Username: "ghost", Password: "secret"}, backends.ErrUnauthenticated, ""},
		{"wrong password in the URL", Config{URL: "redis://:wrong@" + r.Addr() + "/0"}, backends.ErrUnauthenticated, ""},
		{"database index out of range", Config{Addrs: []string{r.Addr()}, Password: "secret", DB: 99}, backends.ErrInvalidArgument, "redis.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConnector(tc.cfg, nil)
			require.NoError(t, err)
			began := time.Now()
			err = c.Connect(t.Context())
			require.ErrorIs(t, err, tc.is)
			assert.NotErrorIs(t, err, backends.ErrUnavailable)
			assert.Less(t, time.Since(began), time.Second, "a refusal is reported at once")
			assert.Equal(t, 1, strings.Count(err.Error(), "baton: "), "one sentinel in %q", err)
			assert.NotContains(t, err.Error(), "secret", "no password in the text")
			if tc.field != "" {
				var ia *backends.InvalidArgumentError
				require.ErrorAs(t, err, &ia)
				assert.Equal(t, tc.field, ia.Field)
				assert.Equal(t, "99", ia.Value)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

// TestRefusalAfterConnect: the server's password changes under a
// connected connector. New connections are refused, so the health check
// and the components report ErrUnauthenticated.
func TestRefusalAfterConnect(t *testing.T) {
	r := harness.StartRedis(t, harness.WithRedisPassword("secret"))
	c := kitConnect(t, Config{Addrs: []string{r.Addr()}, Password: "secret"})
	require.NoError(t, c.HealthCheck(t.Context()))
	cache, err := NewCache(c, backends.CacheOptions{Namespace: backends.Namespace{Env: "test"}, Name: "refused"})
	require.NoError(t, err)
	require.NoError(t, cache.Set(t.Context(), "k", []byte("v"), 0))

	cl := c.Client()
	require.NoError(t, cl.ConfigSet(t.Context(), "requirepass", "rotated").Err())
	// Drop every connection (this one too, so its reply may be lost), so
	// that the next command dials and authenticates again, with the old
	// password.
	_ = cl.Do(t.Context(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no").Err()

	require.Eventually(t, func() bool {
		return errors.Is(c.HealthCheck(t.Context()), backends.ErrUnauthenticated)
	}, 5*time.Second, 20*time.Millisecond, "the health check reports the refusal")
	_, err = cache.Get(t.Context(), "k")
	require.ErrorIs(t, err, backends.ErrUnauthenticated)
	t.Logf("after the rotation: %v", err)
}
