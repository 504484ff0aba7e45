package runtime_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/runtime"
)

func TestConfigValidation(t *testing.T) {
	redisOK := &redis.Config{Addrs: []string{"127.0.0.1:6379"}}
	etcdOK := &etcd.Config{Endpoints: []string{"127.0.0.1:2379"}}
	cases := []struct {
		name  string
		cfg   runtime.Spec
		field string // "" = valid
	}{
		{"embedded default", runtime.Spec{}, ""},
		{"all redis", runtime.Spec{Redis: redisOK}, ""},
		{"all etcd", runtime.Spec{Etcd: etcdOK}, ""},
		{"mixed", runtime.Spec{Redis: redisOK, Etcd: etcdOK,
			Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "etcd", Config: "etcd"}}, ""},
		{"unknown backend", runtime.Spec{Redis: redisOK, Backends: runtime.BackendChoice{Cache: "memcached"}}, "backends.cache"},
		{"redis chosen without redis section", runtime.Spec{Etcd: etcdOK, Backends: runtime.BackendChoice{Lock: "redis"}}, "backends.lock"},
		{"etcd chosen without etcd section", runtime.Spec{Redis: redisOK, Backends: runtime.BackendChoice{Config: "etcd"}}, "backends.config"},
		{"missing redis address", runtime.Spec{Redis: &redis.Config{}}, "redis.addrs"},
		{"bad redis url", runtime.Spec{Redis: &redis.Config{URL: "http://x"}}, "redis.url"},
		{"empty etcd endpoints", runtime.Spec{Etcd: &etcd.Config{}}, "etcd.endpoints"},
		{"bad env name", runtime.Spec{Env: "Prod!"}, "env"},
		{"negative op timeout", runtime.Spec{Components: runtime.ComponentSettings{OpTimeout: -1}}, "components.op_timeout"},
		{"negative lock ttl", runtime.Spec{Components: runtime.ComponentSettings{LockTTL: -5}}, "components.lock_ttl"},
		{"lock ttl of 1ms", runtime.Spec{Components: runtime.ComponentSettings{LockTTL: time.Millisecond}}, "components.lock_ttl"},
		{"cache ttl of 1ns", runtime.Spec{Components: runtime.ComponentSettings{CacheDefaultTTL: 1}}, "components.cache_default_ttl"},
		{"zero refused retry is the default", runtime.Spec{Connector: runtime.ConnectorSettings{RefusedRetry: 0}}, ""},
		{"embedded alongside redis", runtime.Spec{Redis: redisOK, Embedded: runtime.EmbeddedSpec{Enabled: true},
			Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "etcd", Config: "etcd"}}, ""},
		{"embedded and an etcd section", runtime.Spec{Etcd: etcdOK, Embedded: runtime.EmbeddedSpec{Enabled: true}}, "embedded.enabled"},
		{"embedded unused", runtime.Spec{Redis: redisOK, Embedded: runtime.EmbeddedSpec{Enabled: true},
			Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "redis", Config: "redis"}}, "embedded.enabled"},
		{"backoff max below initial", runtime.Spec{Connector: runtime.ConnectorSettings{BackoffInitial: 10e9, BackoffMax: 1e9}}, "connector.backoff_max"},
		{"node id with slash", runtime.Spec{NodeID: "a/b"}, "node_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, backends.ErrInvalidArgument)
			var ia *backends.InvalidArgumentError
			require.True(t, errors.As(err, &ia), "%T %v", err, err)
			assert.Contains(t, ia.Field, tc.field, "error names the field: %v", err)
		})
	}
}

func TestLoadConfigYAMLAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "baton.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
env: test
node_id: n1
backends:
  cache: redis
  config: etcd
redis:
  url: redis://127.0.0.1:6390/2
etcd:
  endpoints: ["127.0.0.1:2390"]
  dial_timeout: 3s
components:
  lock_ttl: 20s
  lock_handoff_limit: 250ms
`), 0o600))
	t.Setenv(runtime.EnvEnv, "prod")
	t.Setenv(runtime.EnvLockBackend, "redis")
	cfg, err := runtime.LoadSpec(path)
	require.NoError(t, err)
	assert.Equal(t, "prod", cfg.Env, "environment overrides the file")
	assert.Equal(t, "n1", cfg.NodeID)
	assert.Equal(t, "redis", cfg.Backends.Cache)
	assert.Equal(t, "redis", cfg.Backends.Lock)
	assert.Equal(t, "etcd", cfg.Backends.Config)
	assert.Equal(t, "etcd", cfg.Backends.Discovery, "unset entries default to etcd when etcd is configured")
	assert.Equal(t, "redis://127.0.0.1:6390/2", cfg.Redis.URL)
	assert.Equal(t, "3s", cfg.Etcd.DialTimeout.String())
	assert.Equal(t, "20s", cfg.Components.LockTTL.String())
	assert.Equal(t, "250ms", cfg.Components.LockHandoffLimit.String())

	// Unknown fields are errors, not silent defaults.
	require.NoError(t, os.WriteFile(path, []byte("env: test\nbackend:\n  cache: redis\n"), 0o600))
	_, err = runtime.LoadSpec(path)
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	// Bad durations from the environment name the variable.
	t.Setenv(runtime.EnvOpTimeout, "soon")
	_, err = runtime.LoadSpec("")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), runtime.EnvOpTimeout)
}

// TestYAMLErrorsNameTheField: a YAML mistake is reported with the field's
// path, the value, what to write instead, and the file and line — not the
// decoder's Go type names.
func TestYAMLErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "baton.yaml")
	for _, tc := range []struct {
		name, yaml, field, value, reason string
	}{
		{"duration without unit", "env: test\ncomponents:\n  lock_ttl: 10\n",
			"components.lock_ttl", `"10"`, `a duration needs a unit: write "10s" (or ms, m, h) (` + path + ` line 3)`},
		{"duration in words", "etcd:\n  endpoints: [\"127.0.0.1:2379\"]\n  dial_timeout: 3 seconds\n",
			"etcd.dial_timeout", `"3 seconds"`, `not a duration: write e.g. "500ms", "10s" or "1m30s" (` + path + ` line 3)`},
		{"unknown field", "env: test\ncomponents:\n  lock_tll: 10s\n",
			"components.lock_tll", `"10s"`, "unknown field (" + path + " line 3)"},
		{"number expected", "components:\n  cache_max_batch: lots\n",
			"components.cache_max_batch", `"lots"`, "must be a whole number (" + path + " line 2)"},
		{"list expected", "redis:\n  addrs: 127.0.0.1:6379\n",
			"redis.addrs", `"127.0.0.1:6379"`, "must be a list (" + path + " line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
			_, err := runtime.LoadSpec(path)
			require.ErrorIs(t, err, backends.ErrInvalidArgument)
			var ia *backends.InvalidArgumentError
			require.ErrorAs(t, err, &ia)
			assert.Equal(t, tc.field, ia.Field)
			assert.Equal(t, tc.value, ia.Value)
			assert.Equal(t, tc.reason, ia.Reason)
			assert.NotContains(t, err.Error(), "time.Duration")
			assert.NotContains(t, err.Error(), "runtime.")
			t.Log(err)
		})
	}
	// A syntax error names the file.
	require.NoError(t, os.WriteFile(path, []byte("env: [test\n"), 0o600))
	_, err := runtime.LoadSpec(path)
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), path)
	t.Log(err)
	// Without a file, the line alone.
	_, err = runtime.ParseSpec([]byte("components:\n  lock_ttl: 10\n"))
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `components.lock_ttl "10": a duration needs a unit: write "10s" (or ms, m, h) (line 2)`)
}
