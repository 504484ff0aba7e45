package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-go/baton/backends"
)

const (
	// fanoutKey is the one key every subscriber watches.
	fanoutKey = "fanout"
	// eventTimeout bounds the wait for an event that should arrive in milliseconds.
	eventTimeout = 10 * time.Second
)

// fanout is one implementation's config.watch_fanout set-up: n subscriptions on one key of one
// config center, each drained by a goroutine of its own that timestamps the event it waits for.
type fanout struct {
	set    func(ctx context.Context, value string) error
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      int

	base      time.Time // the clock the receivers read, monotonic
	cur       atomic.Int64
	remaining atomic.Int64
	recv      []time.Duration // per subscriber: when it saw the current value
	done      chan struct{}
	seq       int64
}

// subscribe opens n watches with watch and measures what they cost: live heap (plus goroutine
// stacks) and goroutines per subscription, before any receiver goroutine exists. Then it
// starts the receivers.
func subscribe(ctx context.Context, n int, watch func(ctx context.Context) (<-chan backends.ConfigEvent, error)) (*fanout, map[string]float64, error) {
	f := &fanout{n: n, recv: make([]time.Duration, n), done: make(chan struct{}, 1), base: time.Now()}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	chans := make([]<-chan backends.ConfigEvent, n)

	heap0, gor0 := settledHeapAndGoroutines()
	for i := range chans {
		ch, err := watch(wctx)
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("watch %d of %d: %w", i+1, n, err)
		}
		chans[i] = ch
	}
	heap1, gor1 := heapAndGoroutines()
	extra := map[string]float64{
		"bytes_per_sub":      (float64(heap1) - float64(heap0)) / float64(n),
		"goroutines_per_sub": float64(gor1-gor0) / float64(n),
	}

	for i, ch := range chans {
		f.wg.Go(func() {
			for ev := range ch {
				if ev.Type != backends.ConfigPut {
					continue
				}
				seq, err := strconv.ParseInt(ev.Item.Value, 10, 64)
				if err != nil || seq != f.cur.Load() {
					continue
				}
				f.recv[i] = time.Since(f.base)
				if f.remaining.Add(-1) == 0 {
					select {
					case f.done <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	return f, extra, nil
}

// publish does one Set and waits until every subscriber has seen it. It adds the latency of
// each subscriber to r twice: from Set returning to the receiver reading the event (an event
// that beats Set's return counts as 0), and from the Set call.
func (f *fanout) publish(ctx context.Context, r *round) error {
	f.seq++
	f.cur.Store(f.seq)
	f.remaining.Store(int64(f.n))
	select { // a stale signal from a previous, timed-out publish
	case <-f.done:
	default:
	}
	callAt := time.Since(f.base)
	if err := f.set(ctx, strconv.FormatInt(f.seq, 10)); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	setAt := time.Since(f.base)
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
		return fmt.Errorf("%d of %d subscribers: %w", f.remaining.Load(), f.n, errTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, at := range f.recv {
		r.lat = append(r.lat, max(at-setAt, 0))
		r.fromCall = append(r.fromCall, at-callAt)
	}
	return nil
}

func (f *fanout) run(ctx context.Context, d time.Duration) round {
	start := time.Now()
	var r round
	for time.Since(start) < d {
		if err := f.publish(ctx, &r); err != nil {
			r.errs++
			r.firstErr = err
			break
		}
		r.ops += int64(f.n)
	}
	r.elapsed = time.Since(start)
	return r
}

// stop ends the watches and waits for the receivers (their channels close).
func (f *fanout) stop() error {
	f.cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(eventTimeout):
		return errors.New("config watches did not close within the timeout")
	}
}

// fanoutRunners returns the implementations of config.watch_fanout on s with n subscribers
// each. Their subscriptions are opened one implementation at a time, so each one's memory is
// measured alone.
func fanoutRunners(ctx context.Context, s *stack, n int) ([]*runner, error) {
	var out []*runner
	closeAll := func() {
		for _, r := range out {
			if r.close != nil {
				_ = r.close(ctx)
			}
		}
	}

	// baton: n watches through the node's config facade; the config actor shares one backend
	// watch between them. The actor runs watches of its own (the node's settings), so the
	// count is the difference the subscriptions made.
	before, err := s.backendWatches(ctx)
	if err != nil {
		return nil, err
	}
	cc, err := s.node.ConfigWith(backends.ConfigOptions{Name: "bench-baton"})
	if err != nil {
		return nil, err
	}
	f, extra, err := subscribe(ctx, n, func(ctx context.Context) (<-chan backends.ConfigEvent, error) {
		return cc.Watch(ctx, fanoutKey)
	})
	if err != nil {
		_ = cc.Close()
		return nil, fmt.Errorf("baton: %w", err)
	}
	f.set = func(ctx context.Context, v string) error { return cc.Set(ctx, fanoutKey, v) }
	after, err := s.backendWatches(ctx)
	if err != nil {
		_ = f.stop()
		_ = cc.Close()
		return nil, fmt.Errorf("baton: %w", err)
	}
	extra["backend_watches"] = float64(after - before)
	out = append(out, &runner{impl: "baton", extra: extra,
		run: func(ctx context.Context, _ int, d time.Duration) round { return f.run(ctx, d) },
		close: func(context.Context) error {
			err := f.stop()
			return errors.Join(err, cc.Close())
		}})

	// direct: the backend config center used as is, one backend watch per subscriber (an etcd
	// watch each; on Redis a stream reader each, which holds a connection while it blocks, so
	// this connector's pool has room for all of them).
	pool := 0
	if s.backend == backends.BackendRedis {
		pool = n + 32
	}
	conn, err := newConnector(s.backend, s.addr, pool)
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := conn.Connect(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("direct: connect: %w", err)
	}
	disconnect := func() { _ = conn.Disconnect(context.WithoutCancel(ctx)) }
	center, err := newConfigCenter(conn, "bench-direct")
	if err != nil {
		disconnect()
		closeAll()
		return nil, err
	}
	fd, extra, err := subscribe(ctx, n, func(ctx context.Context) (<-chan backends.ConfigEvent, error) {
		return center.WatchWith(ctx, fanoutKey, backends.WatchOptions{})
	})
	if err != nil {
		_ = center.Close()
		disconnect()
		closeAll()
		return nil, fmt.Errorf("direct: %w", err)
	}
	fd.set = func(ctx context.Context, v string) error { return center.Set(ctx, fanoutKey, v) }
	extra["backend_watches"] = float64(n)
	out = append(out, &runner{impl: "direct", extra: extra,
		run: func(ctx context.Context, _ int, d time.Duration) round { return fd.run(ctx, d) },
		close: func(context.Context) error {
			err := fd.stop()
			_ = center.Close()
			disconnect()
			return err
		}})
	return out, nil
}
