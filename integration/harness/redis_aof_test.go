package harness

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedisAOFAndWipe: with WithRedisAOF a SIGKILLed server comes back with
// what it acknowledged; after Wipe it comes back empty.
func TestRedisAOFAndWipe(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // a local redis-server
	rds := StartRedis(t, WithRedisAOF())
	client := redis.NewClient(&redis.Options{Addr: rds.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	ctx := t.Context()
	require.NoError(t, client.Set(ctx, "k", "v", 0).Err())

	rds.Restart() // SIGKILL, then start on the same files
	v, err := client.Get(ctx, "k").Result()
	require.NoError(t, err, "the acknowledged write survives kill -9")
	assert.Equal(t, "v", v)

	rds.Wipe()
	requireRefused(t, rds.Addr())
	rds.Start()
	assert.ErrorIs(t, client.Get(ctx, "k").Err(), redis.Nil, "a wiped server starts empty")
	require.NoError(t, client.Set(ctx, "k2", "v2", 0).Err(), "and takes writes")
}
