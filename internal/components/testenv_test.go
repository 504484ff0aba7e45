package components_test

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// server is a backend server started for one test, with the means to kill
// and restart it on the same address.
type server struct {
	backend  string
	stop     func()
	start    func()
	conn     backends.Connector
	newCache func(name string) (backends.Cache, error)
}

func newSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actors.NewSystem(nil)
	t.Cleanup(sys.Shutdown)
	return sys
}

func testNamespace(t testing.TB) backends.Namespace {
	return backends.Namespace{Env: "test"}
}

// startServer starts a real server of the given backend (etcd as its own
// process, so Stop is a SIGKILL) and a connected connector to it.
func startServer(t testing.TB, backend string) *server {
	t.Helper()
	ns := testNamespace(t)
	switch backend {
	case backends.BackendRedis:
		r := harness.StartRedis(t)
		cfg := redis.DefaultConfig()
		cfg.Addrs = []string{r.Addr()}
		conn, err := redis.NewConnector(cfg, nil)
		require.NoError(t, err)
		require.NoError(t, conn.Connect(t.Context()))
		t.Cleanup(func() { _ = conn.Disconnect(context.Background()) })
		return &server{backend: backend, stop: r.Stop, start: r.Start, conn: conn,
			newCache: func(name string) (backends.Cache, error) {
				return redis.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: name})
			}}
	default:
		e := harness.StartEtcdProcess(t)
		cfg := etcd.DefaultConfig()
		cfg.Endpoints = e.Endpoints()
		conn, err := etcd.NewConnector(cfg, nil)
		require.NoError(t, err)
		require.NoError(t, conn.Connect(t.Context()))
		t.Cleanup(func() { _ = conn.Disconnect(context.Background()) })
		return &server{backend: backend, stop: e.Stop, start: e.Start, conn: conn,
			newCache: func(name string) (backends.Cache, error) {
				return etcd.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: name})
			}}
	}
}

// stateRecorder subscribes to the supervisor's connector events and
// forwards them to a channel, acknowledging each as a subscriber must.
func stateRecorder(t *testing.T, sys *actor.ActorSystem, supervisor *actor.PID) <-chan *connectorv1.ConnectorState {
	t.Helper()
	ch := make(chan *connectorv1.ConnectorState, 256)
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *connectorv1.StateChanged:
			select {
			case ch <- m.GetConnector():
			default:
			}
			ctx.Send(supervisor, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
		}
	})
	pid, err := sys.Root.SpawnNamed(props, "recorder-"+t.Name())
	require.NoError(t, err)
	_, err = actors.Request[*connectorv1.SubscribeResponse](t.Context(), sys.Root, supervisor,
		&connectorv1.SubscribeRequest{SubscriptionId: "recorder", Subscriber: actors.SubscriberOf(pid)})
	require.NoError(t, err)
	return ch
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
