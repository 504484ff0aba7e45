package etcd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/integration/harness"
)

// enableAuth turns on etcd's authentication with a root user.
func enableAuth(t *testing.T, e *harness.Etcd, password string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx := t.Context()
	_, err = cli.RoleAdd(ctx, "root")
	require.NoError(t, err)
	_, err = cli.UserAdd(ctx, "root", password)
	require.NoError(t, err)
	_, err = cli.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = cli.AuthEnable(ctx)
	require.NoError(t, err)
}

// TestConnectRefusals: a server with authentication enabled refuses wrong
// or missing credentials at once, as ErrUnauthenticated (not
// ErrUnavailable); the right ones work.
func TestConnectRefusals(t *testing.T) {
	e := harness.StartEtcd(t)
	enableAuth(t, e, "rootpw")
	for _, tc := range []struct {
		name     string
		user, pw string
	}{
		{"no credentials", "", ""},
		{"wrong password", "root", "wrong"},
		{"unknown user", "ghost", "rootpw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := etcd.DefaultConfig()
			cfg.Endpoints, cfg.Username, cfg.Password = e.Endpoints(), tc.user, tc.pw
			c, err := etcd.NewConnector(cfg, nil)
			require.NoError(t, err)
			began := time.Now()
			err = c.Connect(t.Context())
			require.ErrorIs(t, err, backends.ErrUnauthenticated)
			assert.NotErrorIs(t, err, backends.ErrUnavailable)
			assert.Less(t, time.Since(began), 2*time.Second, "a refusal is reported at once")
			assert.Equal(t, 1, strings.Count(err.Error(), "baton: "), "one sentinel in %q", err)
			assert.NotContains(t, err.Error(), "rootpw")
			t.Logf("%s: %v", tc.name, err)
		})
	}
	cfg := etcd.DefaultConfig()
	cfg.Endpoints, cfg.Username, cfg.Password = e.Endpoints(), "root", "rootpw"
	c := connect(t, cfg)
	require.NoError(t, c.HealthCheck(t.Context()))
	cache, err := etcd.NewCache(c, backends.CacheOptions{Namespace: backends.Namespace{Env: "test"}, Name: "auth"})
	require.NoError(t, err)
	require.NoError(t, cache.Set(t.Context(), "k", []byte("v"), 0))
}
