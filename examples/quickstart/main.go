// Command quickstart is the tour of Baton: `make run` starts it on the
// embedded default — an etcd server inside the process, in a temporary data
// directory, nothing to install — and walks through each component.
//
//	go run ./examples/quickstart                     # embedded etcd
//	go run ./examples/quickstart -config baton.yaml  # your Redis/etcd
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/embedded"
)

func main() {
	configPath := flag.String("config", "", "YAML system config (default: the embedded etcd)")
	flag.Parse()
	if err := run(*configPath); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(configPath string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg, err := runtime.LoadConfig(configPath)
	if err != nil {
		return err
	}
	node, err := runtime.New(cfg, embedded.Option())
	if err != nil {
		return err
	}
	start := time.Now()
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err := node.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "quickstart: stop:", err)
		}
	}()
	where := "embedded etcd"
	if !cfg.UsesEmbedded() {
		where = "configured backends"
	}
	fmt.Printf("node %s started on %s in %s (env %s)\n", cfg.NodeID, where, time.Since(start).Round(time.Millisecond), cfg.Env)

	health, err := node.Health(ctx)
	if err != nil {
		return err
	}
	for _, h := range health {
		fmt.Printf("connector %-5s %s\n", h.Backend, h.State)
	}

	cache := node.Cache("quickstart")
	if err := cache.Set(ctx, "greeting", []byte("hello, baton"), 0); err != nil {
		return err
	}
	v, err := cache.Get(ctx, "greeting")
	if err != nil {
		return err
	}
	fmt.Printf("cache: greeting = %q\n", v)
	return nil
}
