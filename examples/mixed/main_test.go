package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/integration/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMixed runs the example against real servers: Redis from the harness,
// and the embedded etcd the example starts itself.
func TestMixed(t *testing.T) {
	r := harness.StartRedis(t)
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer func() { _ = out.Close() }()
	ctx := t.Context()
	require.NoError(t, run(ctx, out, r.Addr(), ""))
	data, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	for _, want := range []string{"config (etcd)", "discovery (etcd)", "lock (redis)", "cache (redis): cart-7"} {
		require.True(t, strings.Contains(string(data), want), "output lacks %q:\n%s", want, data)
	}
}
