package components_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/internal/components"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// actorCall is one request type the fuzz target sends: which actor serves
// it, how to make an empty one, and how to ask for its reply type.
type actorCall struct {
	actor string // "cache" or "config"
	empty func() proto.Message
	ask   func(ctx context.Context, root *actor.RootContext, pid *actor.PID, req proto.Message) error
}

func call[Resp proto.Message](target string, newReq func() proto.Message) actorCall {
	return actorCall{actor: target, empty: newReq,
		ask: func(ctx context.Context, root *actor.RootContext, pid *actor.PID, req proto.Message) error {
			_, err := actors.Request[Resp](ctx, root, pid, req)
			return err
		}}
}

// actorCalls are every request of the cache and config actors; a fuzz
// input picks one by index.
var actorCalls = []actorCall{
	call[*cachev1.GetResponse]("cache", func() proto.Message { return new(cachev1.GetRequest) }),
	call[*cachev1.SetResponse]("cache", func() proto.Message { return new(cachev1.SetRequest) }),
	call[*cachev1.DeleteResponse]("cache", func() proto.Message { return new(cachev1.DeleteRequest) }),
	call[*cachev1.ExistsResponse]("cache", func() proto.Message { return new(cachev1.ExistsRequest) }),
	call[*cachev1.ClearResponse]("cache", func() proto.Message { return new(cachev1.ClearRequest) }),
	call[*cachev1.GetManyResponse]("cache", func() proto.Message { return new(cachev1.GetManyRequest) }),
	call[*cachev1.SetManyResponse]("cache", func() proto.Message { return new(cachev1.SetManyRequest) }),
	call[*cachev1.StatsResponse]("cache", func() proto.Message { return new(cachev1.StatsRequest) }),
	call[*configv1.GetResponse]("config", func() proto.Message { return new(configv1.GetRequest) }),
	call[*configv1.SetResponse]("config", func() proto.Message { return new(configv1.SetRequest) }),
	call[*configv1.DeleteResponse]("config", func() proto.Message { return new(configv1.DeleteRequest) }),
	call[*configv1.ListResponse]("config", func() proto.Message { return new(configv1.ListRequest) }),
	call[*configv1.HistoryResponse]("config", func() proto.Message { return new(configv1.HistoryRequest) }),
	call[*configv1.RollbackResponse]("config", func() proto.Message { return new(configv1.RollbackRequest) }),
	call[*configv1.ResolveResponse]("config", func() proto.Message { return new(configv1.ResolveRequest) }),
	call[*configv1.WatchResponse]("config", func() proto.Message { return new(configv1.WatchRequest) }),
}

// actorFuzzSeeds are one meaningful request per entry of actorCalls, in order.
func actorFuzzSeeds() []proto.Message {
	u := func(v uint64) *uint64 { return &v }
	return []proto.Message{
		&cachev1.GetRequest{Name: "sessions", Key: "u1"},
		&cachev1.SetRequest{Name: "sessions", Key: "u1", Value: []byte("v"), Ttl: durationpb.New(time.Minute)},
		&cachev1.DeleteRequest{Name: "sessions", Key: "u1"},
		&cachev1.ExistsRequest{Name: "a/b", Key: "u1"},
		&cachev1.ClearRequest{Name: "sessions"},
		&cachev1.GetManyRequest{Name: "sessions", Keys: []string{"u1", "", "u2"}},
		&cachev1.SetManyRequest{Name: "sessions", Items: []*cachev1.Item{{Key: "u2", Value: []byte("x"), Ttl: durationpb.New(-time.Second)}}},
		&cachev1.StatsRequest{Name: "sessions"},
		&configv1.GetRequest{Key: "app/a"},
		&configv1.SetRequest{Name: "other", Key: "app/a", Value: "1", ExpectedVersion: u(0)},
		&configv1.DeleteRequest{Key: "app/a\x00"},
		&configv1.ListRequest{Prefix: "app/"},
		&configv1.HistoryRequest{Key: "app/a", Limit: 3},
		&configv1.RollbackRequest{Key: "app/a", Version: 1},
		&configv1.ResolveRequest{Component: "cache", Instance: "n1", Key: "ttl"},
		&configv1.WatchRequest{SubscriptionId: "s1", Key: "app/", Prefix: true},
	}
}

// actorFuzzEnv is a real Redis with a cache and a config actor on it.
type actorFuzzEnv struct {
	root             *actor.RootContext
	cachePID, cfgPID *actor.PID
}

// startActorFuzzEnv starts the server and the actors once per process (the
// fuzz function runs once in each worker) and stops them at its end, so
// goleak in TestMain finds nothing left. The pool is generous: every
// watch the fuzzer opens and closes again holds a connection in XREAD
// BLOCK for up to a second after it is cancelled.
func startActorFuzzEnv(f *testing.F) *actorFuzzEnv {
	f.Helper()
	r := harness.StartRedis(f)
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	cfg.PoolSize = 512
	conn, err := redis.NewConnector(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Connect(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Disconnect(context.Background()) })

	ns := backends.Namespace{Env: "fuzz"}
	center, err := redis.NewConfigCenter(conn, backends.ConfigOptions{Namespace: ns})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = center.Close() })

	sys := actors.NewSystem(nil)
	f.Cleanup(sys.Shutdown)
	const opTimeout = time.Second // well inside the 2s a reply may take
	cachePID, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{
		NewCache: func(name string) (backends.Cache, error) {
			return redis.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: name})
		},
		Backend: backends.BackendRedis, OpTimeout: opTimeout,
	}), "cache")
	if err != nil {
		f.Fatal(err)
	}
	cfgPID, err := sys.Root.SpawnNamed(components.NewConfigActorProps(components.ConfigActorConfig{
		Center: center,
		Open: func(name string) (backends.ConfigCenter, error) {
			return redis.NewConfigCenter(conn, backends.ConfigOptions{Namespace: ns, Name: name})
		},
		Backend: backends.BackendRedis, OpTimeout: opTimeout,
	}), "config")
	if err != nil {
		f.Fatal(err)
	}
	// Stopping the config actor ends its watches and closes what it opened.
	f.Cleanup(func() {
		_ = sys.Root.StopFuture(cfgPID).Wait()
		_ = sys.Root.StopFuture(cachePID).Wait()
	})
	return &actorFuzzEnv{root: sys.Root, cachePID: cachePID, cfgPID: cfgPID}
}

// FuzzActorRequests decodes arbitrary bytes as one of the cache and config
// actors' request messages (inputs that do not unmarshal are skipped) and
// sends it to the real actor on a real Redis. The reply must come within
// 2s, and an error must match one of backends.Sentinels: a hang, a lost
// reply, an internal error or a panic in the actor fails. A watch that
// was granted is unsubscribed again, as a client would.
func FuzzActorRequests(f *testing.F) {
	for i, m := range actorFuzzSeeds() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	env := startActorFuzzEnv(f)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := actorCalls[int(which)%len(actorCalls)]
		req := c.empty()
		if err := proto.Unmarshal(data, req); err != nil {
			t.Skip("not a request of this type")
		}
		pid := env.cachePID
		if c.actor == "config" {
			pid = env.cfgPID
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := c.ask(ctx, env.root, pid, req)
		if ctx.Err() != nil {
			t.Fatalf("%T %v: no reply within 2s: %v", req, req, err)
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("%T %v: error %q matches no backends sentinel", req, req, err)
		}
		if w, ok := req.(*configv1.WatchRequest); ok && err == nil {
			_, err := actors.Request[*subscriptionv1.UnsubscribeResponse](ctx, env.root, env.cfgPID,
				&subscriptionv1.UnsubscribeRequest{SubscriptionId: w.GetSubscriptionId()})
			if err != nil {
				t.Fatalf("unsubscribe %q: %v", w.GetSubscriptionId(), err)
			}
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range backends.Sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
