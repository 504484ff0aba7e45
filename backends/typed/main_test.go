package typed_test

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

// server is one redis-server for the test that calls it, with a connector
// that is disconnected when the test ends.
type server struct {
	conn *redis.Connector
}

func startServer(t *testing.T) server {
	t.Helper()
	srv := harness.StartRedis(t)
	conn, err := redis.NewConnector(redis.Config{URL: srv.URL()}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, conn.Connect(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Disconnect(ctx)
	})
	return server{conn: conn}
}

// cache returns a byte cache in an environment of its own, so tests sharing
// a server never see each other's keys.
func (s server) cache(t *testing.T) backends.Cache {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	c, err := redis.NewCache(s.conn, backends.CacheOptions{
		Namespace: backends.Namespace{Env: "typed-" + hex.EncodeToString(b[:])},
		Name:      "test",
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
