package redis

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-go/baton/backends"
)

// parseEntries turns fuzz text into stream entries: one entry a line,
// fields separated by tabs, each "name=value" (a field without '=' has an
// empty value).
func parseEntries(text string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(text, "\n") {
		m := map[string]any{}
		for _, f := range strings.Split(line, "\t") {
			if f == "" {
				continue
			}
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

// FuzzWatchDecoding feeds arbitrary log entries (what XREAD returns) to the
// config and discovery watches, and arbitrary script replies to the
// listings their resyncs decode (values and versions hashes, instance
// JSON). Nothing may panic or block; an entry becomes an event only when
// it is one the scripts write, and then exactly the event it describes;
// everything else is skipped. A discovery event never carries an instance
// that fails ServiceInfo.Validate. A listing fails only when the reply's
// shape or header is off; damaged items in it are skipped.
func FuzzWatchDecoding(f *testing.F) {
	instance := `{"address":"10.0.0.1:80","weight":3,"tags":["a"]}`
	for _, s := range []struct {
		entries, reply, key string
		prefix              bool
	}{
		{"t=p\tk=app/a\tv=1\te=E\nt=d\tk=app/a\tv=\te=E", "E\n12\napp/a\t1\nx\n11", "app/", true},
		{"t=p\tk=app/a\nt=p\tv=no key\nt=x\tk=app/a\tv=1", "E\n\napp/a\nv\nnot-a-version", "app/a", false},
		{"t=p\tk=\x00\tv=1\nt=d", "E\nnan", "", true},
		{"t=added\tid=api-1\tinfo=" + instance + "\nt=updated\tid=api-1\tinfo=" + instance +
			"\nt=updated\tid=api-1\tinfo={\"address\":\"b\"}\nt=removed\tid=api-1", "E\n7\napi-1\n" + instance, "", true},
		{"t=added\tid=api-2\tinfo={}\nt=added\tid=\tinfo=" + instance + "\nt=added\tid=a/b\tinfo=" + instance +
			"\nt=added\tid=n\tinfo={\"address\":\"x\",\"weight\":-1}\nt=removed\tid=ghost", "E\n7\nbad\n{\nok\n{\"address\":\"x\"}", "", false},
		{"", "", "", false},
		{"t=added\tid=x\tinfo=null", "E\n1\nx\nnull\ny", "k", false},
	} {
		f.Add(s.entries, s.reply, s.key, s.prefix)
	}
	f.Fuzz(func(t *testing.T, entries, reply, key string, prefix bool) {
		ctx := context.Background()
		logger := slog.New(slog.DiscardHandler)
		list := parseEntries(entries)
		checkConfigEntries(ctx, t, &configStore{logger: logger}, list, key, prefix)
		checkDiscoveryEntries(ctx, t, &registry{logger: logger}, list)

		vals := strings.Split(reply, "\n")
		checkConfigList(t, &configStore{logger: logger}, vals)
		checkSnapshot(t, &registry{logger: logger}, vals)
		for _, v := range vals {
			if n, ok := logSeq(v); ok {
				if m, ok := logSeq(strconv.FormatUint(n, 10) + "-0"); !ok || m != n {
					t.Fatalf("log entry ID %q read as %d does not survive formatting", v, n)
				}
			}
			if ver, kind, value, ok := cfgParseHistory(v); ok {
				again := strconv.FormatUint(ver, 10) + ":" + kind + ":" + value
				if v2, k2, val2, ok := cfgParseHistory(again); !ok || v2 != ver || k2 != kind || val2 != value {
					t.Fatalf("history record %q does not survive formatting", v)
				}
			}
		}
	})
}

func checkConfigEntries(ctx context.Context, t *testing.T, c *configStore, list []map[string]any, key string, prefix bool) {
	w := &cfgWatch{c: c, key: key, prefix: prefix, ch: make(chan backends.ConfigEvent, len(list)+1), view: map[string]uint64{}}
	want := map[string]uint64{}
	for i, values := range list {
		seq := uint64(i + 1)
		if !w.apply(ctx, seq, values) {
			t.Fatalf("config apply of entry %d gave up with a live context", i)
		}
		typ, _ := values["t"].(string)
		k, kOK := values["k"].(string)
		v, vOK := values["v"].(string)
		watched := kOK && backends.ValidateKey(k) == nil && w.matches(k)
		var expect *backends.ConfigEvent
		switch {
		case watched && typ == "p" && vOK:
			expect = &backends.ConfigEvent{Type: backends.ConfigPut, Item: backends.ConfigItem{Key: k, Value: v, Version: seq}}
			want[k] = seq
		case watched && typ == "d":
			expect = &backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: k, Version: seq}}
			delete(want, k)
		}
		select {
		case ev := <-w.ch:
			if expect == nil || ev != *expect {
				t.Fatalf("config entry %d %q: event %+v, want %+v", i, values, ev, expect)
			}
		default:
			if expect != nil {
				t.Fatalf("config entry %d %q: no event, want %+v", i, values, *expect)
			}
		}
	}
	if !reflect.DeepEqual(w.view, want) {
		t.Fatalf("config watch view %v, want %v", w.view, want)
	}
}

func checkDiscoveryEntries(ctx context.Context, t *testing.T, d *registry, list []map[string]any) {
	const service = "api"
	w := &discWatch{d: d, service: service, ch: make(chan backends.ServiceEvent, len(list)+1), view: map[string]discInstance{}}
	for i, values := range list {
		seq := uint64(i + 1)
		typ, _ := values["t"].(string)
		id, _ := values["id"].(string)
		raw, _ := values["info"].(string)
		old, known := w.view[id]
		if !w.apply(ctx, seq, values) {
			t.Fatalf("discovery apply of entry %d gave up with a live context", i)
		}
		var ev *backends.ServiceEvent
		select {
		case e := <-w.ch:
			ev = &e
		default:
		}
		switch {
		case ev == nil:
			// Skipped: must be an entry that changes nothing we can see.
			if typ == "removed" && known {
				t.Fatalf("discovery entry %d removes known %q without an event", i, id)
			}
			if (typ == "added" || typ == "updated") && validInstance(service, id, raw) && !(known && old.raw == raw) {
				t.Fatalf("discovery entry %d: instance %q (%s) skipped", i, id, raw)
			}
		case ev.Type == backends.ServiceRemoved:
			if typ != "removed" || !known || !reflect.DeepEqual(ev.Service, old.svc) {
				t.Fatalf("discovery entry %d %q: unexpected %+v (known %v)", i, values, *ev, known)
			}
			if _, still := w.view[id]; still {
				t.Fatalf("removed %q stays in the view", id)
			}
		case ev.Type == backends.ServiceAdded || ev.Type == backends.ServiceUpdated:
			if typ != "added" && typ != "updated" {
				t.Fatalf("discovery entry %d of type %q gave %+v", i, typ, *ev)
			}
			if (ev.Type == backends.ServiceUpdated) != known {
				t.Fatalf("discovery entry %d: %v for an id known=%v", i, ev.Type, known)
			}
			if err := ev.Service.Validate(); err != nil || ev.Service.ID != id || ev.Service.Name != service {
				t.Fatalf("discovery entry %d delivers %+v (validate: %v)", i, ev.Service, err)
			}
			if !reflect.DeepEqual(w.view[id].svc, ev.Service) {
				t.Fatalf("view of %q is %+v after %+v", id, w.view[id].svc, ev.Service)
			}
		default:
			t.Fatalf("discovery entry %d: event type %v", i, ev.Type)
		}
		if ev != nil && ev.Revision != seq {
			t.Fatalf("event revision %d, want %d", ev.Revision, seq)
		}
	}
}

// validInstance reports whether raw is instance JSON Register could have
// stored for id.
func validInstance(service, id, raw string) bool {
	var svc backends.ServiceInfo
	if json.Unmarshal([]byte(raw), &svc) != nil {
		return false
	}
	svc.ID, svc.Name = id, service
	return svc.Validate() == nil
}

func checkConfigList(t *testing.T, c *configStore, vals []string) {
	got, err := c.decodeList("list", vals)
	badShape := len(vals) < 2 || (len(vals)-2)%3 != 0
	if !badShape && vals[1] != "" {
		_, perr := strconv.ParseUint(vals[1], 10, 64)
		badShape = perr != nil
	}
	if (err != nil) != badShape {
		t.Fatalf("decodeList(%q): err = %v, want an error: %v", vals, err, badShape)
	}
	if err != nil {
		return
	}
	want := 0
	for i := 2; i < len(vals); i += 3 {
		if _, perr := strconv.ParseUint(vals[i+2], 10, 64); perr == nil && backends.ValidateKey(vals[i]) == nil {
			want++
		}
	}
	if len(got.items) != want {
		t.Fatalf("decodeList(%q) kept %d items, want %d", vals, len(got.items), want)
	}
	if !slices.IsSortedFunc(got.items, func(a, b backends.ConfigItem) int { return strings.Compare(a.Key, b.Key) }) {
		t.Fatalf("decodeList items not sorted: %v", got.items)
	}
	for _, it := range got.items {
		if backends.ValidateKey(it.Key) != nil {
			t.Fatalf("decodeList kept invalid key %q", it.Key)
		}
	}
}

func checkSnapshot(t *testing.T, d *registry, vals []string) {
	const service = "api"
	got, err := d.decodeSnapshot("snapshot", service, vals)
	badShape := len(vals) < 2 || len(vals)%2 != 0
	if !badShape && vals[1] != "" {
		_, perr := strconv.ParseUint(vals[1], 10, 64)
		badShape = perr != nil
	}
	if (err != nil) != badShape {
		t.Fatalf("decodeSnapshot(%q): err = %v, want an error: %v", vals, err, badShape)
	}
	if err != nil {
		return
	}
	want := 0
	for i := 2; i < len(vals); i += 2 {
		if validInstance(service, vals[i], vals[i+1]) {
			want++
		}
	}
	if len(got.instances) != want {
		t.Fatalf("decodeSnapshot(%q) kept %d instances, want %d", vals, len(got.instances), want)
	}
	for i, e := range got.instances {
		if err := e.svc.Validate(); err != nil || e.svc.Name != service {
			t.Fatalf("decodeSnapshot kept %+v: %v", e.svc, err)
		}
		if i > 0 && got.instances[i-1].svc.ID > e.svc.ID {
			t.Fatalf("decodeSnapshot instances not sorted by ID")
		}
	}
}
