package harness

import (
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestLaunchRedis(t *testing.T) {
	rds, err := LaunchRedis()
	require.NoError(t, err)
	dir := rds.dir
	client := redis.NewClient(&redis.Options{Addr: rds.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	require.NoError(t, client.Ping(t.Context()).Err())

	require.NoError(t, rds.Close())
	requireRefused(t, rds.Addr())
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the temp dir")
	assert.NoError(t, rds.Close(), "a second Close does nothing")
}

func TestLaunchEtcd(t *testing.T) {
	etcd, err := LaunchEtcd()
	require.NoError(t, err)
	dir := etcd.dir
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	_, err = client.Put(t.Context(), "k", "v")
	require.NoError(t, err)
	require.NoError(t, client.Close())

	require.NoError(t, etcd.Close())
	requireRefused(t, etcd.Endpoints()[0])
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the temp dir")
	assert.NoError(t, etcd.Close(), "a second Close does nothing")
}

func TestLaunchedServerPanicsWhereATestWouldFail(t *testing.T) {
	assert.PanicsWithValue(t, "boom 1", func() { panicReporter{}.Fatalf("boom %d", 1) })
}
