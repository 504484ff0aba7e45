package main

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
)

// registrationTTL is the TTL of every benchmark registration; each is removed long before.
const registrationTTL = 10 * time.Second

// watchLatency measures register → watcher event on one service: register a new instance,
// time until the watcher sees it added, deregister it and wait until the watcher sees that
// too (untimed), repeat.
type watchLatency struct {
	d       backends.ServiceDiscovery
	service string
	events  <-chan backends.ServiceEvent
	cancel  context.CancelFunc
	n       int
}

func newWatchLatency(ctx context.Context, d backends.ServiceDiscovery, service string) (*watchLatency, error) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := d.Watch(wctx, service)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", service, err)
	}
	w := &watchLatency{d: d, service: service, events: ch, cancel: cancel}
	if err := w.await(ctx, backends.ServiceSnapshot, ""); err != nil {
		cancel()
		return nil, err
	}
	return w, nil
}

// await reads events until one of type typ (for instance id, unless typ is a snapshot).
func (w *watchLatency) await(ctx context.Context, typ backends.ServiceEventType, id string) error {
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				return fmt.Errorf("watch %s closed", w.service)
			}
			if ev.Type == typ && (typ == backends.ServiceSnapshot || ev.Service.ID == id) {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("%s event for %q: %w", typ, id, errTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *watchLatency) cycle(ctx context.Context) (time.Duration, error) {
	w.n++
	id := fmt.Sprintf("i%d", w.n)
	svc := backends.ServiceInfo{ID: id, Name: w.service, Address: "127.0.0.1:9"}
	start := time.Now()
	if err := w.d.Register(ctx, svc, registrationTTL); err != nil {
		return 0, fmt.Errorf("register: %w", err)
	}
	if err := w.await(ctx, backends.ServiceAdded, id); err != nil {
		return 0, err
	}
	lat := time.Since(start)
	if err := w.d.Deregister(ctx, id); err != nil {
		return 0, fmt.Errorf("deregister: %w", err)
	}
	return lat, w.await(ctx, backends.ServiceRemoved, id)
}

func (w *watchLatency) run(ctx context.Context, d time.Duration) round {
	// One caller: the events of one watch are consumed in order by this goroutine.
	return closedLoop(ctx, 1, d, false, func(ctx context.Context, _, _ int) (time.Duration, error) {
		return w.cycle(ctx)
	})
}

// discoveryRunners returns the implementations of discovery.watch_latency on s.
func discoveryRunners(ctx context.Context, s *stack) ([]*runner, error) {
	var out []*runner

	// baton: register and watch through the node's discovery facade (the node owns it).
	wb, err := newWatchLatency(ctx, s.node.Discovery(), "bench-svc-baton")
	if err != nil {
		return nil, fmt.Errorf("baton: %w", err)
	}
	out = append(out, &runner{impl: "baton",
		run: func(ctx context.Context, _ int, d time.Duration) round { return wb.run(ctx, d) },
		close: func(context.Context) error {
			wb.cancel()
			return nil
		}})

	// direct: the backend discovery used as is, on a connector of its own.
	conn, err := newConnector(s.backend, s.addr, 0)
	if err == nil {
		err = conn.Connect(ctx)
	}
	if err != nil {
		wb.cancel()
		return nil, fmt.Errorf("direct: connect: %w", err)
	}
	cleanup := func() error { return conn.Disconnect(context.WithoutCancel(ctx)) }
	d, err := newDiscovery(conn, backends.DiscoveryOptions{Namespace: namespace})
	if err != nil {
		_ = cleanup()
		wb.cancel()
		return nil, err
	}
	wd, err := newWatchLatency(ctx, d, "bench-svc-direct")
	if err != nil {
		_ = d.Close()
		_ = cleanup()
		wb.cancel()
		return nil, fmt.Errorf("direct: %w", err)
	}
	out = append(out, &runner{impl: "direct",
		run: func(ctx context.Context, _ int, d time.Duration) round { return wd.run(ctx, d) },
		close: func(context.Context) error {
			wd.cancel()
			_ = d.Close()
			return cleanup()
		}})
	return out, nil
}
