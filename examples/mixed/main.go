// Command mixed runs Baton with a backend per component: cache and locks on
// Redis, discovery and config on etcd — the usual split (fast, volatile
// data on Redis; durable coordination state on etcd).
//
//	go run ./examples/mixed -redis 127.0.0.1:6379 -etcd 127.0.0.1:2379
//
// Without -etcd it starts an embedded etcd for the etcd half; Redis must be
// running (`make deps` installs redis-server; `redis-server --port 6379`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/embedded"
)

func main() {
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address (cache and locks)")
	etcdEndpoints := flag.String("etcd", "", "etcd endpoints, comma-separated (discovery and config); empty = embedded etcd")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *redisAddr, *etcdEndpoints); err != nil {
		fmt.Fprintln(os.Stderr, "mixed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out *os.File, redisAddr, etcdEndpoints string) error {
	if etcdEndpoints == "" {
		srv, err := embedded.Start(ctx, embedded.Options{})
		if err != nil {
			return err
		}
		defer func() { _ = srv.Close() }()
		etcdEndpoints = strings.Join(srv.Endpoints(), ",")
	}
	rc := redis.DefaultConfig()
	rc.Addrs = []string{redisAddr}
	ec := etcd.DefaultConfig()
	ec.Endpoints = strings.Split(etcdEndpoints, ",")
	cfg := runtime.Spec{
		Env: "dev", NodeID: "mixed-1", Redis: &rc, Etcd: &ec,
		Backends: runtime.BackendChoice{Cache: "redis", Lock: "redis", Discovery: "etcd", Config: "etcd"},
	}
	node, err := runtime.New(cfg)
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = node.Stop(context.Background()) }()
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	p("cache=redis lock=redis discovery=etcd config=etcd (node %s)", cfg.NodeID)

	if err := node.Config().Set(ctx, "checkout/timeout", "3s"); err != nil {
		return err
	}
	timeout, err := node.Config().Get(ctx, "checkout/timeout")
	if err != nil {
		return err
	}
	p("config (etcd): checkout/timeout = %s", timeout)

	if err := node.Discovery().Register(ctx, backends.ServiceInfo{ID: "checkout-1", Name: "checkout", Address: "127.0.0.1:8081"}, 5*time.Second); err != nil {
		return err
	}
	found, err := node.Discovery().Discover(ctx, "checkout")
	if err != nil {
		return err
	}
	p("discovery (etcd): checkout has %d instance(s) at %s", len(found), found[0].Address)

	lease, err := node.Locks().Acquire(ctx, "checkout-batch", backends.LockOptions{TTL: 5 * time.Second})
	if err != nil {
		return err
	}
	p("lock (redis): %s held with fencing token %d", lease.Name(), lease.Token())
	cache := node.Cache("carts")
	if err := cache.Set(ctx, "cart-7", []byte(`{"items":3}`), time.Minute); err != nil {
		return err
	}
	v, err := cache.Get(ctx, "cart-7")
	if err != nil {
		return err
	}
	p("cache (redis): cart-7 = %s", v)
	if err := lease.Release(ctx); err != nil {
		return err
	}
	return node.Discovery().Deregister(ctx, "checkout-1")
}
