package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/cluster"
)

// clusterNodes is the size of the baton-cluster implementation's cluster.
const clusterNodes = 3

// clusterLockRunner is lock.contended on a Baton cluster (impl
// "baton-cluster"): three members, each a cluster.Node with its own actor
// system and remoting on 127.0.0.1, all on the stack's backend, in this
// process. The callers are spread round-robin over the nodes, so every
// hand-off crosses nodes: all of them queue in the one lock grain of the
// name (on whichever member owns it), which grants in arrival order.
func clusterLockRunner(ctx context.Context, s *stack, name string) (*runner, error) {
	var nodes []*cluster.Node
	closeAll := func(ctx context.Context) error {
		var errs []error
		for _, n := range nodes {
			if err := n.Stop(ctx); err != nil && !errors.Is(err, backends.ErrClosed) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for i := range clusterNodes {
		cfg := runtime.Spec{NodeID: fmt.Sprintf("bench-cluster-%s-%d", s.backend, i+1), Env: namespace.Env, Root: namespace.Root}
		cfg.Backends = runtime.BackendChoice{Cache: s.backend, Lock: s.backend, Discovery: s.backend, Config: s.backend}
		if s.backend == backends.BackendRedis {
			rc := redis.DefaultConfig()
			rc.Addrs = s.addr
			cfg.Redis = &rc
		} else {
			ec := etcd.DefaultConfig()
			ec.Endpoints = s.addr
			cfg.Etcd = &ec
		}
		n, err := cluster.New(cluster.Spec{Name: "bench-" + s.backend, Node: &cfg})
		if err != nil {
			return nil, errors.Join(err, closeAll(ctx))
		}
		if err := n.Start(ctx); err != nil {
			return nil, errors.Join(fmt.Errorf("cluster node %d: %w", i+1, err), closeAll(ctx))
		}
		nodes = append(nodes, n)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if _, err := n.WaitMembers(wctx, func(ms []cluster.Member) bool { return len(ms) == clusterNodes }); err != nil {
			return nil, errors.Join(err, closeAll(ctx))
		}
	}
	return lockRunner("baton-cluster", true, func(_ context.Context, n int) ([]lockOps, error) {
		ops := make([]lockOps, n)
		for w := range ops {
			locks := nodes[w%len(nodes)].Locks()
			var lease backends.Lease
			ops[w] = lockOps{
				acquire: func(ctx context.Context) (err error) {
					lease, err = locks.Acquire(ctx, name+"-baton-cluster", backends.LockOptions{TTL: lockTTL})
					return err
				},
				release: func(ctx context.Context) error { return lease.Release(ctx) },
			}
		}
		return ops, nil
	}, closeAll), nil
}
