package etcd

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch lists service (the ServiceSnapshot event, sent first) and then sends
// ServiceAdded, ServiceUpdated and ServiceRemoved events until ctx ends or
// the Discovery is closed; the channel is then closed. See the type doc for
// how reconnects, compaction and wiped servers are handled. A write that
// leaves an instance as it was sends nothing. The listing happens before
// Watch returns, so an unreachable etcd is reported as ErrUnavailable.
func (d *registry) Watch(ctx context.Context, service string) (<-chan backends.ServiceEvent, error) {
	const op = "etcd: discovery watch"
	if err := backends.ValidateName("service name", service); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed("watch")
	}
	resp, err := d.list(ctx, service)
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	view := d.decodeAll(service, resp.Kvs)
	rev := resp.Header.Revision
	out := make(chan backends.ServiceEvent, watchBuffer)
	wctx, cancel := mergeDone(ctx, d.ctx)

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cancel()
		return nil, d.errClosed("watch")
	}
	d.wg.Add(1)
	d.mu.Unlock()

	sw := &serviceWatch{d: d, service: service, view: view, out: out}
	prefix := d.prefix(service)
	w := &resumableWatch{
		conn:     d.conn,
		log:      d.log,
		key:      prefix,
		end:      clientv3.GetPrefixRangeEnd(prefix),
		prevKV:   true,
		next:     rev + 1,
		seen:     rev,
		cluster:  resp.Header.ClusterId,
		onEvents: sw.events,
		onResync: sw.resync,
	}
	go func() {
		defer d.wg.Done()
		defer close(out)
		defer cancel()
		snap := backends.ServiceEvent{Type: backends.ServiceSnapshot, Instances: sortedInstances(view), Revision: uint64(rev)}
		if sw.send(wctx, snap) != nil {
			return
		}
		w.run(wctx)
	}()
	return out, nil
}

// serviceWatch is the state of one Watch: the instances the watcher holds.
type serviceWatch struct {
	d       *registry
	service string
	view    map[string]backends.ServiceInfo
	out     chan<- backends.ServiceEvent
}

func (s *serviceWatch) send(ctx context.Context, ev backends.ServiceEvent) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *serviceWatch) events(ctx context.Context, evs []*mvccpb.Event) error {
	for _, ev := range evs {
		rev := uint64(ev.Kv.ModRevision)
		switch ev.Type {
		case mvccpb.Event_PUT:
			id, svc, ok := s.d.decode(s.service, ev.Kv)
			if !ok {
				// An instance overwritten with garbage is gone for us.
				if err := s.remove(ctx, id, rev); err != nil {
					return err
				}
				continue
			}
			if err := s.upsert(ctx, id, svc, rev); err != nil {
				return err
			}
		case mvccpb.Event_DELETE:
			id := strings.TrimPrefix(string(ev.Kv.Key), s.d.prefix(s.service))
			if err := s.remove(ctx, id, rev); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *serviceWatch) upsert(ctx context.Context, id string, svc backends.ServiceInfo, rev uint64) error {
	old, had := s.view[id]
	if had && reflect.DeepEqual(old, svc) {
		return nil
	}
	s.view[id] = svc
	typ := backends.ServiceAdded
	if had {
		typ = backends.ServiceUpdated
	}
	return s.send(ctx, backends.ServiceEvent{Type: typ, Service: svc, Revision: rev})
}

func (s *serviceWatch) remove(ctx context.Context, id string, rev uint64) error {
	old, had := s.view[id]
	if !had {
		return nil
	}
	delete(s.view, id)
	return s.send(ctx, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old, Revision: rev})
}

// resync sends the difference between the view and a fresh listing:
// removals first, then additions and updates, each in ID order.
func (s *serviceWatch) resync(ctx context.Context, kvs []*mvccpb.KeyValue, rev int64) error {
	now := s.d.decodeAll(s.service, kvs)
	for _, svc := range sortedInstances(s.view) {
		if _, ok := now[svc.ID]; !ok {
			if err := s.remove(ctx, svc.ID, uint64(rev)); err != nil {
				return err
			}
		}
	}
	for _, svc := range sortedInstances(now) {
		if err := s.upsert(ctx, svc.ID, svc, uint64(rev)); err != nil {
			return err
		}
	}
	return nil
}
