package etcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/baton-go/baton/backends"
)

// FuzzStoredValues decodes arbitrary etcd data the way reads and watches
// do: watch events (a WatchResponse from arbitrary bytes, its keys moved
// under the watched range as etcd guarantees) applied to a discovery and a
// config watch, and a raw value read as a cache entry and as a config
// history record. Nothing may panic or fail: values that are not Baton's
// are skipped. A discovery watch only ever hands out instances that pass
// ServiceInfo.Validate and are named by their key, removes only what it
// handed out, and a config watch only ever hands out valid keys. Election
// and lock values are compared and returned verbatim, so they have no
// decoder to fuzz.
func FuzzStoredValues(f *testing.F) {
	ns := backends.Namespace{Env: "dev"}
	dpfx := ns.Prefix(backends.ComponentDiscovery, "api")
	cpfx := ns.Prefix(backends.ComponentConfig, "default")
	instance := []byte(`{"address":"10.0.0.1:80","weight":2}`)
	resp := func(evs ...*mvccpb.Event) []byte {
		b, err := proto.Marshal(&etcdserverpb.WatchResponse{Events: evs})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	put := func(key string, value []byte, rev int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: value, ModRevision: rev, CreateRevision: rev}}
	}
	del := func(key string, rev int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
	}
	f.Add(resp(put(dpfx+"api-1", instance, 5), put(dpfx+"api-1", instance, 6), put(dpfx+"api-1", []byte("{"), 7), del(dpfx+"api-1", 8)),
		encodeEntry([]byte("v"), 42), int64(9))
	f.Add(resp(put(dpfx+"api-2", []byte(`{}`), 3), put(dpfx+"a/b", instance, 4), put(dpfx, instance, 5), del(dpfx+"ghost", 6)),
		[]byte(encodeRecord(0, "value")), int64(11))
	f.Add(resp(put(cpfx+"app/a", []byte("1"), 3), put(cpfx, []byte("bare prefix"), 4), put(cpfx+"x\x00", nil, 5), del(cpfx+"app/a", 6)),
		[]byte(encodeRecord(7, "")), int64(7))
	f.Add([]byte{0x0a, 0x02}, []byte{envMagic, envVersion, 1}, int64(0))
	f.Add([]byte{}, []byte{}, int64(-1))

	f.Fuzz(func(t *testing.T, watch []byte, raw []byte, modRev int64) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		var wr etcdserverpb.WatchResponse
		if proto.Unmarshal(watch, &wr) == nil {
			d := &registry{opts: backends.DiscoveryOptions{Namespace: ns.WithDefaults()}, log: log}
			checkServiceEvents(ctx, t, d, underPrefix(wr.GetEvents(), dpfx))
			c := &configStore{log: log, prefix: cpfx}
			checkConfigEvents(ctx, t, c, underPrefix(wr.GetEvents(), cpfx))
		}
		checkCacheEntry(t, raw)
		checkHistoryRecord(t, raw, modRev)
	})
}

// underPrefix copies evs with every key moved under prefix (a range watch
// only sees keys there) and every event given a kv.
func underPrefix(evs []*mvccpb.Event, prefix string) []*mvccpb.Event {
	out := make([]*mvccpb.Event, 0, len(evs))
	for _, ev := range evs {
		kv := &mvccpb.KeyValue{}
		if ev.GetKv() != nil {
			kv = proto.Clone(ev.GetKv()).(*mvccpb.KeyValue)
		}
		if !bytes.HasPrefix(kv.Key, []byte(prefix)) {
			kv.Key = append([]byte(prefix), kv.Key...)
		}
		out = append(out, &mvccpb.Event{Type: ev.GetType(), Kv: kv})
	}
	return out
}

func checkServiceEvents(ctx context.Context, t *testing.T, d *registry, evs []*mvccpb.Event) {
	const service = "api"
	out := make(chan backends.ServiceEvent, 1)
	s := &serviceWatch{d: d, service: service, view: map[string]backends.ServiceInfo{}, out: out}
	for i, ev := range evs {
		id := strings.TrimPrefix(string(ev.Kv.Key), d.prefix(service))
		old, known := s.view[id]
		if err := s.events(ctx, []*mvccpb.Event{ev}); err != nil {
			t.Fatalf("discovery event %d: %v", i, err)
		}
		var got *backends.ServiceEvent
		select {
		case e := <-out:
			got = &e
		default:
		}
		var svc backends.ServiceInfo
		decodes := json.Unmarshal(ev.Kv.Value, &svc) == nil
		svc.ID, svc.Name = id, service
		valid := decodes && svc.Validate() == nil
		isPut, gone := ev.Type == mvccpb.Event_PUT, ev.Type == mvccpb.Event_DELETE || (ev.Type == mvccpb.Event_PUT && !valid)
		switch {
		case got == nil:
			if known && gone {
				t.Fatalf("discovery event %d: known %q neither kept nor removed", i, id)
			}
			if isPut && valid && !(known && reflect.DeepEqual(old, svc)) {
				t.Fatalf("discovery event %d: valid instance %q skipped", i, id)
			}
		case got.Type == backends.ServiceRemoved:
			if !known || !gone || !reflect.DeepEqual(got.Service, old) {
				t.Fatalf("discovery event %d: removal %+v (known %v, gone %v)", i, got.Service, known, gone)
			}
		case got.Type == backends.ServiceAdded || got.Type == backends.ServiceUpdated:
			if !isPut || (got.Type == backends.ServiceUpdated) != known {
				t.Fatalf("discovery event %d: %v for a %v of a known=%v id", i, got.Type, ev.Type, known)
			}
			if err := got.Service.Validate(); err != nil || got.Service.ID != id || got.Service.Name != service {
				t.Fatalf("discovery event %d hands out %+v (validate: %v)", i, got.Service, err)
			}
		default:
			t.Fatalf("discovery event %d: type %v", i, got.Type)
		}
		if got != nil && got.Revision != uint64(ev.Kv.ModRevision) {
			t.Fatalf("discovery event %d: revision %d, want %d", i, got.Revision, ev.Kv.ModRevision)
		}
	}
	for id, svc := range s.view {
		if err := svc.Validate(); err != nil || svc.ID != id {
			t.Fatalf("view holds %q: %+v (%v)", id, svc, err)
		}
	}
}

func checkConfigEvents(ctx context.Context, t *testing.T, c *configStore, evs []*mvccpb.Event) {
	out := make(chan backends.ConfigEvent, len(evs)+1)
	w := &configWatch{c: c, key: "", view: map[string]int64{}, out: out}
	if err := w.events(ctx, evs); err != nil {
		t.Fatalf("config events: %v", err)
	}
	close(out)
	n := 0
	for ev := range out {
		if err := backends.ValidateKey(ev.Item.Key); err != nil {
			t.Fatalf("config watch hands out key %q: %v", ev.Item.Key, err)
		}
		if ev.Type == backends.ConfigDelete && ev.Item.Value != "" {
			t.Fatalf("delete event carries a value: %+v", ev)
		}
		n++
	}
	want := 0
	for _, ev := range evs {
		if backends.ValidateKey(strings.TrimPrefix(string(ev.Kv.Key), c.prefix)) == nil {
			want++
		}
	}
	if n != want {
		t.Fatalf("config watch sent %d events for %d events with valid keys", n, want)
	}
	// A resync from the same keys as a listing holds the same rule.
	kvs := make([]*mvccpb.KeyValue, 0, len(evs))
	for _, ev := range evs {
		kvs = append(kvs, ev.Kv)
	}
	out2 := make(chan backends.ConfigEvent, 2*len(kvs)+2)
	w.out = out2
	if err := w.resync(ctx, kvs, 100); err != nil {
		t.Fatalf("config resync: %v", err)
	}
	close(out2)
	for ev := range out2 {
		if ev.Type != backends.ConfigResync && backends.ValidateKey(ev.Item.Key) != nil {
			t.Fatalf("config resync hands out key %q", ev.Item.Key)
		}
	}
}

func checkCacheEntry(t *testing.T, raw []byte) {
	value, deadline := decodeEntry(raw)
	if !bytes.HasSuffix(raw, value) {
		t.Fatalf("decodeEntry(%q) = %q, not a suffix of the stored bytes", raw, value)
	}
	if len(value) == len(raw) && deadline != 0 {
		t.Fatalf("decodeEntry(%q): a value without a header has deadline %d", raw, deadline)
	}
	v2, d2 := decodeEntry(encodeEntry(value, deadline))
	if !bytes.Equal(v2, value) || d2 != deadline {
		t.Fatalf("entry (%q, %d) does not survive encoding: (%q, %d)", value, deadline, v2, d2)
	}
}

func checkHistoryRecord(t *testing.T, raw []byte, modRev int64) {
	version, value, ok := decodeRecord(&mvccpb.KeyValue{Value: raw, ModRevision: modRev})
	if ok != (len(raw) >= historyHeader) {
		t.Fatalf("decodeRecord(%q): ok = %v", raw, ok)
	}
	if !ok {
		return
	}
	if header := int64(binary.BigEndian.Uint64(raw)); (header == 0 && version != modRev) || (header != 0 && version != header) {
		t.Fatalf("decodeRecord(%q) at revision %d: version %d", raw, modRev, version)
	}
	if value != string(raw[historyHeader:]) {
		t.Fatalf("decodeRecord(%q): value %q", raw, value)
	}
	if v2, val2, ok := decodeRecord(&mvccpb.KeyValue{Value: []byte(encodeRecord(version, value)), ModRevision: modRev}); !ok || v2 != version || val2 != value {
		t.Fatalf("record (%d, %q) does not survive encoding", version, value)
	}
}
