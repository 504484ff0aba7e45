// Command quickstart is the tour of Baton: `make run` starts it on the
// embedded default — an etcd server inside the process, in a temporary data
// directory, nothing to install — and walks through every component.
//
//	go run ./examples/quickstart                     # embedded etcd
//	go run ./examples/quickstart -config baton.yaml  # your Redis/etcd
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/typed"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
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

// step prints one line of the tour.
func step(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }

func run(configPath string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg, err := runtime.LoadSpec(configPath)
	if err != nil {
		return err
	}
	reloads := make(chan runtime.SettingsEvent, 16)
	node, err := runtime.New(cfg, embedded.Option(), runtime.WithSettingsObserver(func(e runtime.SettingsEvent) {
		select {
		case reloads <- e:
		default:
		}
	}))
	if err != nil {
		return err
	}
	begin := time.Now()
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err := node.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "quickstart: stop:", err)
		}
	}()
	where := "an embedded etcd"
	if !cfg.UsesEmbedded() {
		where = fmt.Sprintf("cache=%s lock=%s discovery=%s config=%s", cfg.Backends.Cache, cfg.Backends.Lock, cfg.Backends.Discovery, cfg.Backends.Config)
	}
	fmt.Printf("node %s started on %s in %s (env %q)\n", cfg.NodeID, where, time.Since(begin).Round(time.Millisecond), cfg.Env)

	for _, tour := range []struct {
		name string
		run  func(context.Context, *runtime.Node) error
	}{
		{"connectors", tourConnectors},
		{"cache", tourCache},
		{"lock", tourLock},
		{"election", tourElection},
		{"discovery", tourDiscovery},
		{"config", func(ctx context.Context, n *runtime.Node) error { return tourConfig(ctx, n, reloads) }},
	} {
		fmt.Println(tour.name + ":")
		if err := tour.run(ctx, node); err != nil {
			return fmt.Errorf("%s: %w", tour.name, err)
		}
	}
	fmt.Printf("tour finished in %s\n", time.Since(begin).Round(time.Millisecond))
	return nil
}

func tourConnectors(ctx context.Context, node *runtime.Node) error {
	health, err := node.Health(ctx)
	if err != nil {
		return err
	}
	for _, h := range health {
		step("%-5s %s (health-checked by a supervised connector actor)", h.Backend, h.State)
	}
	return nil
}

type profile struct {
	Name  string `json:"name"`
	Score int    `json:"score"`
}

func tourCache(ctx context.Context, node *runtime.Node) error {
	cache := node.Cache("tour")
	if err := cache.Set(ctx, "greeting", []byte("hello, baton"), 0); err != nil {
		return err
	}
	v, err := cache.Get(ctx, "greeting")
	if err != nil {
		return err
	}
	step("set/get greeting = %q", v)

	if err := cache.Set(ctx, "otp", []byte("424242"), 2*time.Second); err != nil {
		return err
	}
	start := time.Now()
	for {
		ok, err := cache.Exists(ctx, "otp")
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if time.Since(start) > 10*time.Second {
			return errors.New("otp did not expire")
		}
		time.Sleep(100 * time.Millisecond) // polling for the expiry we want to show
	}
	step("otp with a 2s TTL expired after %s", time.Since(start).Round(100*time.Millisecond))

	profiles := typed.New[profile](cache, nil)
	if err := profiles.Set(ctx, "ada", profile{Name: "Ada", Score: 42}, 0); err != nil {
		return err
	}
	p, err := profiles.Get(ctx, "ada")
	if err != nil {
		return err
	}
	step("typed cache: %+v", p)

	loads := 0
	for range 3 {
		if _, err := cache.GetOrLoad(ctx, "report", backends.LoadOptions{TTL: time.Minute}, func(context.Context) ([]byte, error) {
			loads++
			return []byte("expensive"), nil
		}); err != nil {
			return err
		}
	}
	step("GetOrLoad called 3 times, loader ran %d time(s)", loads)
	return nil
}

func tourLock(ctx context.Context, node *runtime.Node) error {
	locks := node.Locks()
	first, err := locks.Acquire(ctx, "invoices", backends.LockOptions{TTL: 10 * time.Second})
	if err != nil {
		return err
	}
	step("acquired %q, fencing token %d", first.Name(), first.Token())
	if _, err := locks.TryAcquire(ctx, "invoices", backends.LockOptions{}); errors.Is(err, backends.ErrNotObtained) {
		step("a second TryAcquire is refused: %v", backends.ErrNotObtained)
	} else if err != nil {
		return err
	}
	if err := first.Release(ctx); err != nil {
		return err
	}
	second, err := locks.Acquire(ctx, "invoices", backends.LockOptions{TTL: 10 * time.Second})
	if err != nil {
		return err
	}
	step("released and acquired again: token %d > %d", second.Token(), first.Token())
	return second.Release(ctx)
}

func tourElection(ctx context.Context, node *runtime.Node) error {
	el := node.Election()
	octx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := el.Observe(octx, "scheduler")
	if err != nil {
		return err
	}
	lead, err := el.Campaign(ctx, "scheduler", "worker-a")
	if err != nil {
		return err
	}
	step("worker-a leads %q with epoch %d", lead.Election(), lead.Epoch())
	if err := waitLeader(ctx, changes, "worker-a"); err != nil {
		return err
	}
	step("an observer saw the leader: worker-a")
	if err := lead.Resign(ctx); err != nil {
		return err
	}
	if err := waitLeader(ctx, changes, ""); err != nil {
		return err
	}
	step("worker-a resigned; the observer saw no leader")
	return nil
}

func waitLeader(ctx context.Context, changes <-chan backends.LeaderInfo, value string) error {
	for {
		select {
		case info, ok := <-changes:
			if !ok {
				return errors.New("observation ended")
			}
			if info.Value == value {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func tourDiscovery(ctx context.Context, node *runtime.Node) error {
	d := node.Discovery()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	events, err := d.Watch(wctx, "payments")
	if err != nil {
		return err
	}
	next := func() (backends.ServiceEvent, error) {
		select {
		case ev, ok := <-events:
			if !ok {
				return ev, errors.New("watch ended")
			}
			return ev, nil
		case <-ctx.Done():
			return backends.ServiceEvent{}, ctx.Err()
		}
	}
	ev, err := next()
	if err != nil {
		return err
	}
	step("watch payments: %s with %d instance(s)", ev.Type, len(ev.Instances))
	svc := backends.ServiceInfo{ID: "payments-1", Name: "payments", Address: "127.0.0.1:9000",
		Metadata: map[string]string{"zone": "a"}, Version: "1.4.2", Weight: 10}
	if err := d.Register(ctx, svc, 5*time.Second); err != nil {
		return err
	}
	if ev, err = next(); err != nil {
		return err
	}
	step("registered payments-1 (kept alive, self-healing): watcher saw %s %s", ev.Type, ev.Service.Address)
	found, err := d.Discover(ctx, "payments")
	if err != nil {
		return err
	}
	step("discover payments: %d live instance(s)", len(found))
	if err := d.Deregister(ctx, "payments-1"); err != nil {
		return err
	}
	if ev, err = next(); err != nil {
		return err
	}
	step("deregistered: watcher saw %s %s", ev.Type, ev.Service.ID)
	return nil
}

// subscriber is an application actor that subscribes to a config key with
// plain messages and acknowledges each event, as every subscriber does.
type subscriber struct {
	config *actor.PID
	seen   chan<- string
}

func (s *subscriber) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *configv1.Event:
		s.seen <- fmt.Sprintf("%s %s=%q (version %d)", m.GetType(), m.GetItem().GetKey(), m.GetItem().GetValue(), m.GetItem().GetVersion())
		ctx.Send(s.config, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
	case *subscriptionv1.Resync:
		ctx.Send(s.config, &subscriptionv1.Ack{SubscriptionId: m.GetSubscriptionId(), Seq: m.GetSeq()})
	}
}

func tourConfig(ctx context.Context, node *runtime.Node, reloads <-chan runtime.SettingsEvent) error {
	sys := node.ActorSystem()
	configPID := node.PIDs().Config
	seen := make(chan string, 8)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &subscriber{config: configPID, seen: seen}
	}), "tour-config-subscriber")
	if err != nil {
		return err
	}
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	if _, err := actors.Request[*configv1.WatchResponse](ctx, sys.Root, configPID, &configv1.WatchRequest{
		Key: "feature/checkout", SubscriptionId: "tour", Subscriber: actors.SubscriberOf(pid),
	}); err != nil {
		return err
	}
	cc := node.Config()
	if err := cc.Set(ctx, "feature/checkout", "v2"); err != nil {
		return err
	}
	select {
	case line := <-seen:
		step("a subscriber actor received: %s", line)
	case <-ctx.Done():
		return ctx.Err()
	}
	item, err := cc.GetItem(ctx, "feature/checkout")
	if err != nil {
		return err
	}
	if _, err := cc.CompareAndSet(ctx, "feature/checkout", "v3", item.Version-1); errors.Is(err, backends.ErrConflict) {
		step("compare-and-set with a stale version: %v", backends.ErrConflict)
	} else if err != nil {
		return err
	}

	// Layered settings, hot reloaded into the running cache actor.
	settings, err := node.ConfigWith(backends.ConfigOptions{Name: runtime.SettingsConfigName})
	if err != nil {
		return err
	}
	key := runtime.SettingsKey(backends.LayerComponent, backends.ComponentCache, "", "default_ttl")
	if err := settings.Set(ctx, key, "90s"); err != nil {
		return err
	}
	for {
		select {
		case e := <-reloads:
			if e.Setting == "default_ttl" && e.Err == nil && e.Layer == backends.LayerComponent {
				step("hot reload: %s/%s = %s from the %s layer (cache actor now uses it)", e.Component, e.Setting, e.Value, e.Layer)
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
