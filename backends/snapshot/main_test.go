package snapshot_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
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

// freshConfig starts a redis-server for t and returns it with a config
// center in an environment of its own on it.
func freshConfig(t *testing.T) (*harness.Redis, backends.ConfigCenter) {
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
	cc, err := redis.NewConfigCenter(conn, backends.ConfigOptions{Namespace: backends.Namespace{Env: "snapshot-" + hex.EncodeToString(b[:])}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return srv, cc
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func requireConfigValue(t *testing.T, cc backends.ConfigCenter, key, want string) {
	t.Helper()
	it, err := cc.GetItem(ctxFor(t, opTimeout), key)
	require.NoError(t, err, "get %q", key)
	require.Equal(t, want, it.Value, "value of %q", key)
}

// stopServer stops srv and returns the function that starts it again; the
// server is started at cleanup at the latest.
func stopServer(t *testing.T, srv *harness.Redis) func() {
	t.Helper()
	var once sync.Once
	start := func() { once.Do(srv.Start) }
	srv.Stop()
	t.Cleanup(start)
	return start
}

// configHealthy is a read that reaches the backend (found or not).
func configHealthy(cc backends.ConfigCenter) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := cc.GetItem(ctx, "health-probe")
		if errors.Is(err, backends.ErrNotFound) {
			return nil
		}
		return err
	}
}

// waitHealthy polls check until it succeeds (bounded by 30s) and reports a
// failure without stopping the test, so it is safe in a cleanup.
func waitHealthy(t *testing.T, what string, check func(ctx context.Context) error) bool {
	t.Helper()
	var last error
	deadline := time.Now().Add(30 * time.Second)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: backend not healthy again within 30s: %v", what, last)
			return false
		}
		<-ticker.C
	}
}
