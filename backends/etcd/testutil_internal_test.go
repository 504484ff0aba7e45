package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testConn returns a connected Connector to srv, disconnected at cleanup.
func testConn(t *testing.T, srv *harness.Etcd) *Connector {
	t.Helper()
	c, err := NewConnector(Config{Endpoints: srv.Endpoints()}, nil)
	require.NoError(t, err)
	require.NoError(t, c.Connect(t.Context()))
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// rawClient is a plain clientv3 client for looking behind the components.
func rawClient(t *testing.T, srv *harness.Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// testNS is a fresh namespace, so subtests sharing a server never meet.
func testNS() backends.Namespace {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return backends.Namespace{Env: "t" + hex.EncodeToString(b[:])}
}

// rawKeys lists the keys under prefix with their lease and create revision.
func rawKeys(t *testing.T, cli *clientv3.Client, prefix string) []*struct {
	Key   string
	Lease clientv3.LeaseID
	Rev   int64
} {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	require.NoError(t, err)
	out := make([]*struct {
		Key   string
		Lease clientv3.LeaseID
		Rev   int64
	}, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, &struct {
			Key   string
			Lease clientv3.LeaseID
			Rev   int64
		}{string(kv.Key), clientv3.LeaseID(kv.Lease), kv.CreateRevision})
	}
	return out
}

// leaseTTL is the remaining TTL of a lease, or -1 when it does not exist.
func leaseTTL(t *testing.T, cli *clientv3.Client, id clientv3.LeaseID) int64 {
	t.Helper()
	resp, err := cli.TimeToLive(t.Context(), id)
	require.NoError(t, err)
	return resp.TTL
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
