package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/runtime"
)

// namespace is where every benchmark key lives.
var namespace = backends.Namespace{Root: "baton", Env: "bench"}

// stack is one backend's side of the benchmark: a Baton node using that backend for every
// component, and the direct clients the other implementations use.
type stack struct {
	backend string // backends.BackendRedis or backends.BackendEtcd

	// Baton: every component through the node's facades.
	node *runtime.Node
	sys  *actor.ActorSystem
	// configPID is the node's config actor, asked for its watch statistics.
	configPID *actor.PID

	// Direct clients, each with its library's defaults.
	rdb  *goredis.Client  // redis only
	etcd *clientv3.Client // etcd only
	addr []string         // the server address(es)

	closers []func(context.Context) error
}

// configActorName is the name the node spawns its config actor under. The node has no
// accessor for the actor's watch statistics, so the benchmark addresses the actor by name.
const configActorName = "baton-config"

func newStack(ctx context.Context, backend string, addrs []string) (s *stack, err error) {
	s = &stack{backend: backend, addr: addrs}
	defer func() {
		if err != nil {
			_ = s.close(context.WithoutCancel(ctx))
		}
	}()

	cfg := runtime.Spec{NodeID: "bench-" + backend, Env: namespace.Env, Root: namespace.Root}
	cfg.Backends = runtime.BackendChoice{Cache: backend, Lock: backend, Discovery: backend, Config: backend}
	switch backend {
	case backends.BackendRedis:
		rc := redis.DefaultConfig()
		rc.Addrs = addrs
		cfg.Redis = &rc
	default:
		ec := etcd.DefaultConfig()
		ec.Endpoints = addrs
		cfg.Etcd = &ec
	}
	node, err := runtime.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s node: %w", backend, err)
	}
	if err := node.Start(ctx); err != nil {
		return nil, fmt.Errorf("%s node: start: %w", backend, err)
	}
	s.node = node
	s.onClose(node.Stop)
	s.sys = node.ActorSystem()
	s.configPID = s.sys.NewLocalPID(configActorName)

	switch backend {
	case backends.BackendRedis:
		s.rdb = goredis.NewClient(&goredis.Options{Addr: addrs[0]})
		s.onClose(func(context.Context) error { return s.rdb.Close() })
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("redis client: %w", err)
		}
	default:
		cli, err := clientv3.New(clientv3.Config{Endpoints: addrs, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Context: context.WithoutCancel(ctx)})
		if err != nil {
			return nil, fmt.Errorf("etcd client: %w", err)
		}
		s.etcd = cli
		s.onClose(func(context.Context) error { return cli.Close() })
	}
	return s, nil
}

// backendWatches asks the node's config actor how many backend watches it runs.
func (s *stack) backendWatches(ctx context.Context) (int, error) {
	st, err := components.AskWatchStats(ctx, s.sys.Root, s.configPID)
	if err != nil {
		return 0, fmt.Errorf("config actor watch stats: %w", err)
	}
	return st.BackendWatches, nil
}

func (s *stack) onClose(f func(context.Context) error) { s.closers = append(s.closers, f) }

// close stops everything in reverse order of start.
func (s *stack) close(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := s.closers[i](cctx); err != nil && !errors.Is(err, backends.ErrClosed) && !errors.Is(err, actor.ErrTimeout) {
			errs = append(errs, err)
		}
		cancel()
	}
	s.closers = nil
	return errors.Join(errs...)
}

// newConnector returns an unconnected connector; poolSize 0 keeps go-redis's default pool.
func newConnector(backend string, addrs []string, poolSize int) (backends.Connector, error) {
	switch backend {
	case backends.BackendRedis:
		rc := redis.DefaultConfig()
		rc.Addrs = addrs
		rc.PoolSize = poolSize
		return redis.NewConnector(rc, nil)
	default:
		ec := etcd.DefaultConfig()
		ec.Endpoints = addrs
		return etcd.NewConnector(ec, nil)
	}
}

func newConfigCenter(conn backends.Connector, name string) (backends.ConfigCenter, error) {
	opts := backends.ConfigOptions{Namespace: namespace, Name: name}
	if c, ok := conn.(*redis.Connector); ok {
		return redis.NewConfigCenter(c, opts)
	}
	return etcd.NewConfigCenter(conn.(*etcd.Connector), opts)
}

func newDiscovery(conn backends.Connector, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
	if c, ok := conn.(*redis.Connector); ok {
		return redis.NewDiscovery(c, opts)
	}
	return etcd.NewDiscovery(conn.(*etcd.Connector), opts)
}
