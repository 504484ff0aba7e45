package harness

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPause: a paused server answers nothing, keeps its data, and answers
// again after Resume; Pause and Resume are no-ops where they do not apply.
func TestPause(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // signals a local process
	t.Run("redis", func(t *testing.T) {
		rds := StartRedis(t)
		client := redis.NewClient(&redis.Options{Addr: rds.Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = client.Close() })
		require.NoError(t, client.Set(t.Context(), "k", "v", 0).Err())

		rds.Pause()
		rds.Pause() // no-op
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := client.Ping(ctx).Err()
		cancel()
		require.Error(t, err, "a paused redis answered")

		rds.Resume()
		rds.Resume() // no-op
		v, err := client.Get(t.Context(), "k").Result()
		require.NoError(t, err)
		assert.Equal(t, "v", v, "the data survives a pause")

		rds.Pause()
		rds.Stop() // a paused server can be stopped
		requireRefused(t, rds.Addr())
	})
	t.Run("etcd-process", func(t *testing.T) {
		e := StartEtcdProcess(t)
		cli := newEtcdClient(t, e)
		_, err := cli.Put(t.Context(), "k", "v")
		require.NoError(t, err)

		e.Pause()
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, err = cli.Get(ctx, "k")
		cancel()
		require.Error(t, err, "a paused etcd answered")

		e.Resume()
		v, ok := getValue(t, cli, "k")
		require.True(t, ok)
		assert.Equal(t, "v", v)
	})
}
