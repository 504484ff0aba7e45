package redis

import (
	"context"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// Watch sends a ServiceSnapshot of serviceName (taken atomically with the
// log position), then one event per change read from the service's log,
// until ctx ends or Close (the channel is then closed). The snapshot is
// taken before Watch returns; its failure is returned.
//
// Nothing is lost: reads resume from the last log entry seen, retrying with
// backoff while Redis is unreachable. When the log cannot continue where
// the watch left off — entries trimmed away, or a new epoch because the
// server came back empty — the watch re-lists and sends exactly the
// difference to what it has sent so far (Added/Updated/Removed). Events that
// would not change the watcher's view (a repeated add, an identical update,
// removing an unknown ID) are not sent. Removed events carry the last
// ServiceInfo the watcher saw.
func (d *registry) Watch(ctx context.Context, serviceName string) (<-chan backends.ServiceEvent, error) {
	const op = "redis discovery: watch"
	if err := backends.ValidateName("service name", serviceName); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed(op)
	}
	snap, err := d.snapshot(ctx, op, serviceName, true)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.ctx, cancel)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		stop()
		cancel()
		return nil, d.errClosed(op)
	}
	d.useService(serviceName)
	d.wg.Add(1)
	d.mu.Unlock()

	keys := d.keys(serviceName)
	w := &discWatch{
		d:       d,
		service: serviceName,
		keys:    keys,
		ch:      make(chan backends.ServiceEvent, discWatchBuffer),
		view:    make(map[string]discInstance, len(snap.instances)),
		logCursor: logCursor{
			stream: keys.log,
			epoch:  snap.epoch,
			last:   snap.seq,
		},
	}
	list := make([]backends.ServiceInfo, 0, len(snap.instances))
	for _, e := range snap.instances {
		w.view[e.svc.ID] = e
		list = append(list, e.svc)
	}
	w.ch <- backends.ServiceEvent{Type: backends.ServiceSnapshot, Instances: list, Revision: snap.seq}
	go func() {
		defer d.wg.Done()
		defer close(w.ch)
		defer cancel()
		defer stop()
		defer func() {
			d.mu.Lock()
			d.releaseService(serviceName)
			d.mu.Unlock()
		}()
		w.run(wctx)
	}()
	return w.ch, nil
}

// discWatch is the state of one Watch goroutine.
type discWatch struct {
	d       *registry
	service string
	keys    discKeys
	ch      chan backends.ServiceEvent

	logCursor                         // where the view stands in the log
	view      map[string]discInstance // what the watcher has been told
}

func (w *discWatch) run(ctx context.Context) {
	followLog(ctx, w.d.conn, w, false, w.d.opts.RetryMin, w.d.opts.RetryMax, w.d.logger,
		"redis discovery: watch", "service", w.service)
}

func (w *discWatch) cursor() *logCursor { return &w.logCursor }

func (w *discWatch) probeCmd(ctx context.Context, cl goredis.Scripter, last string) *goredis.Cmd {
	return w.keys.run(ctx, cl, discProbeScript, last)
}

// discSleep waits for d or ctx; false when ctx ended.
func discSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// apply turns one log entry into at most one event against the view. It
// returns false when ctx ended before the event could be delivered.
func (w *discWatch) apply(ctx context.Context, seq uint64, values map[string]any) bool {
	kind, _ := values["t"].(string)
	id, _ := values["id"].(string)
	raw, _ := values["info"].(string)
	old, known := w.view[id]
	switch kind {
	case "added", "updated":
		svc, ok := w.d.decode(w.service, id, raw)
		if !ok || (known && old.raw == raw) {
			return true
		}
		w.view[id] = discInstance{svc: svc, raw: raw}
		typ := backends.ServiceAdded
		if known {
			typ = backends.ServiceUpdated
		}
		return sendEvent(ctx, w.ch, backends.ServiceEvent{Type: typ, Service: svc, Revision: seq})
	case "removed":
		if !known {
			return true
		}
		delete(w.view, id)
		return sendEvent(ctx, w.ch, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old.svc, Revision: seq})
	}
	w.d.logger.Warn("skipping unknown log entry", "service", w.service, "type", kind)
	return true
}

// resync re-lists the service and sends the difference to the view.
func (w *discWatch) resync(ctx context.Context, cl goredis.UniversalClient) error {
	const op = "redis discovery: watch"
	snap, err := w.d.snapshot(ctx, op, w.service, true)
	if err != nil {
		return err
	}
	w.d.logger.Debug("watch resync", "service", w.service, "from_epoch", w.epoch, "from_seq", w.last, "to_epoch", snap.epoch, "to_seq", snap.seq)
	cur := make(map[string]discInstance, len(snap.instances))
	ids := make([]string, 0, len(snap.instances)+len(w.view))
	for _, e := range snap.instances {
		cur[e.svc.ID] = e
		ids = append(ids, e.svc.ID)
	}
	for id := range w.view {
		if _, ok := cur[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var events []backends.ServiceEvent
	for _, id := range ids {
		old, had := w.view[id]
		now, has := cur[id]
		switch {
		case had && !has:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old.svc, Revision: snap.seq})
		case !had && has:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceAdded, Service: now.svc, Revision: snap.seq})
		case old.raw != now.raw:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceUpdated, Service: now.svc, Revision: snap.seq})
		}
	}
	// The view moves first: if ctx ends mid-way the watch is over anyway.
	w.view, w.epoch, w.last = cur, snap.epoch, snap.seq
	for _, ev := range events {
		if !sendEvent(ctx, w.ch, ev) {
			return ctx.Err()
		}
	}
	return nil
}
