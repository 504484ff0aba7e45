package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireRefused asserts that nothing listens on addr.
func requireRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
	}
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "dial %s after Stop", addr)
}

func TestRedis(t *testing.T) {
	rds := StartRedis(t)
	addr := rds.Addr()
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
	assert.Equal(t, "redis://"+addr+"/0", rds.URL())

	opts, err := redis.ParseURL(rds.URL())
	require.NoError(t, err)
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	ctx := t.Context()

	require.NoError(t, client.Ping(ctx).Err())
	require.NoError(t, client.Set(ctx, "k", "v", 0).Err())

	rds.Stop()
	requireRefused(t, addr)
	rds.Stop() // no-op when stopped

	rds.Start()
	assert.Equal(t, addr, rds.Addr(), "same port after Start")
	require.NoError(t, client.Ping(ctx).Err())
	assert.ErrorIs(t, client.Get(ctx, "k").Err(), redis.Nil, "data is empty after a restart")

	require.NoError(t, client.Set(ctx, "k", "v", 0).Err())
	rds.Restart()
	require.NoError(t, client.Ping(ctx).Err())
	assert.ErrorIs(t, client.Get(ctx, "k").Err(), redis.Nil)
}

func TestRedisMissingBinary(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // a binary path only means something for local processes
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		StartRedis(ft, WithRedisBinary("/nonexistent/redis-server"))
	}()
	assert.Contains(t, ft.msg, "/nonexistent/redis-server")
	assert.Contains(t, ft.msg, "make deps")
}

// fatalRecorder records Fatalf and unwinds with a panic instead of ending the test, so a test
// can check what a Start function reports.
type fatalRecorder struct {
	testing.TB
	msg string
}

var errFatal = errors.New("fatal")

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}

func newEtcdClient(t *testing.T, e *Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func getValue(t *testing.T, cli *clientv3.Client, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

// exerciseEtcd is the lifecycle check shared by both flavours.
func exerciseEtcd(t *testing.T, e *Etcd) {
	require.Len(t, e.Endpoints(), 1)
	endpoint := e.Endpoints()[0]
	assert.True(t, strings.HasPrefix(endpoint, "127.0.0.1:"), endpoint)
	cli := newEtcdClient(t, e)
	ctx := t.Context()

	_, err := cli.Put(ctx, "k", "v1")
	require.NoError(t, err)
	v, ok := getValue(t, cli, "k")
	require.True(t, ok)
	assert.Equal(t, "v1", v)

	e.Stop()
	requireRefused(t, endpoint)
	e.Stop() // no-op when stopped

	e.Start()
	assert.Equal(t, endpoint, e.Endpoints()[0], "same port after Start")
	v, ok = getValue(t, cli, "k")
	require.True(t, ok, "data survives Stop/Start")
	assert.Equal(t, "v1", v)

	e.Restart()
	v, ok = getValue(t, cli, "k")
	require.True(t, ok, "data survives Restart")
	assert.Equal(t, "v1", v)

	// CompactNow: history before the current revision is gone.
	put, err := cli.Put(ctx, "k", "v2")
	require.NoError(t, err)
	e.CompactNow(t)
	_, err = cli.Get(ctx, "k", clientv3.WithRev(put.Header.Revision-1))
	require.ErrorIs(t, err, rpctypes.ErrCompacted)
	e.CompactNow(t) // compacting again at the same revision is fine

	e.Wipe()
	requireRefused(t, endpoint)
	_, err = os.Stat(e.dataDir)
	require.ErrorIs(t, err, os.ErrNotExist)
	e.Start()
	// The wiped member is a new cluster; a fresh client avoids any state of the old one.
	_, ok = getValue(t, newEtcdClient(t, e), "k")
	assert.False(t, ok, "data is gone after Wipe")
}

func TestEtcdEmbedded(t *testing.T) {
	e := StartEtcd(t)
	require.True(t, e.inProcess)
	exerciseEtcd(t, e)
}

func TestEtcdProcess(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // checks the SIGKILL exit of a local process
	e := StartEtcdProcess(t, WithSnapshotCount(5))
	require.False(t, e.inProcess)
	exerciseEtcd(t, e)

	// Stop is a SIGKILL, and the killed member comes back with its data.
	cli := newEtcdClient(t, e)
	for i := range 20 { // past the snapshot count, so restart replays a snapshot and the WAL
		_, err := cli.Put(t.Context(), "n", string(rune('a'+i)))
		require.NoError(t, err)
	}
	e.Stop()
	require.NotNil(t, e.lastExit)
	status, ok := e.lastExit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	assert.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "exit status %v", e.lastExit)
	e.Start()
	v, ok := getValue(t, cli, "n")
	require.True(t, ok)
	assert.Equal(t, "t", v)
}

func TestFreePortsDistinct(t *testing.T) {
	ports, err := freePorts(3)
	require.NoError(t, err)
	assert.Len(t, ports, 3)
	assert.NotEqual(t, ports[0], ports[1])
	assert.NotEqual(t, ports[1], ports[2])
	assert.NotEqual(t, ports[0], ports[2])
}

func TestPollTimesOut(t *testing.T) {
	err := poll(50*time.Millisecond, 5*time.Millisecond, func() (bool, error) { return false, nil })
	require.ErrorIs(t, err, errPollTimeout)
	stop := errors.New("stop")
	err = poll(time.Second, 5*time.Millisecond, func() (bool, error) { return false, stop })
	require.ErrorIs(t, err, stop)
}
