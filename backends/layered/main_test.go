package layered_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// opTimeout bounds one config call.
const opTimeout = 10 * time.Second

// freshConfig starts a redis-server for t and returns a config center in an
// environment of its own on it.
func freshConfig(t *testing.T) backends.ConfigCenter {
	t.Helper()
	srv := harness.StartRedis(t)
	conn, err := redis.NewConnector(redis.Config{URL: srv.URL()}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	require.NoError(t, conn.Connect(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_ = conn.Disconnect(ctx)
	})
	var b [6]byte
	_, _ = rand.Read(b[:])
	cc, err := redis.NewConfigCenter(conn, backends.ConfigOptions{Namespace: backends.Namespace{Env: "layered-" + hex.EncodeToString(b[:])}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func setKey(t *testing.T, cc backends.ConfigCenter, key, value string) {
	t.Helper()
	require.NoError(t, cc.Set(ctxFor(t, opTimeout), key, value), "set %q", key)
}

func getItem(t *testing.T, cc backends.ConfigCenter, key string) backends.ConfigItem {
	t.Helper()
	it, err := cc.GetItem(ctxFor(t, opTimeout), key)
	require.NoError(t, err, "get item %q", key)
	return it
}

func delKey(t *testing.T, cc backends.ConfigCenter, key string) {
	t.Helper()
	require.NoError(t, cc.Delete(ctxFor(t, opTimeout), key), "delete %q", key)
}
