package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Discover returns the live instances of service, sorted by ID (an empty
// slice when there are none). Values that are not a ServiceInfo are skipped.
func (d *registry) Discover(ctx context.Context, service string) ([]backends.ServiceInfo, error) {
	const op = "etcd: discovery discover"
	if err := backends.ValidateName("service name", service); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed("discover")
	}
	resp, err := d.list(ctx, service)
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	view := d.decodeAll(service, resp.Kvs)
	return sortedInstances(view), nil
}

func (d *registry) list(ctx context.Context, service string) (*clientv3.GetResponse, error) {
	cli, err := d.conn.client()
	if err != nil {
		return nil, err
	}
	octx, cancel := d.conn.opContext(ctx)
	defer cancel()
	return cli.Get(octx, d.prefix(service), clientv3.WithPrefix())
}

// decode parses one instance; ok is false for foreign or corrupt values,
// and for instances Register would have refused (ServiceInfo.Validate: no
// address, a negative weight, a key below the instance's own, …), so a
// reader never gets one.
func (d *registry) decode(service string, kv *mvccpb.KeyValue) (id string, svc backends.ServiceInfo, ok bool) {
	id = strings.TrimPrefix(string(kv.Key), d.prefix(service))
	err := json.Unmarshal(kv.Value, &svc)
	if err == nil {
		// The key is authoritative: a hand-written value cannot pose as
		// another instance or service.
		svc.ID, svc.Name = id, service
		err = svc.Validate()
	}
	if err != nil {
		d.log.Warn("etcd discovery: skipping an undecodable instance", "key", string(kv.Key), "error", err)
		return id, backends.ServiceInfo{}, false
	}
	return id, svc, true
}

func (d *registry) decodeAll(service string, kvs []*mvccpb.KeyValue) map[string]backends.ServiceInfo {
	view := make(map[string]backends.ServiceInfo, len(kvs))
	for _, kv := range kvs {
		if id, svc, ok := d.decode(service, kv); ok {
			view[id] = svc
		}
	}
	return view
}

func sortedInstances(view map[string]backends.ServiceInfo) []backends.ServiceInfo {
	out := make([]backends.ServiceInfo, 0, len(view))
	for _, svc := range view {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
