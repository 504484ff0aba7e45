package linearize_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/internal/linearize"
)

const key = "k"

func item(value string, version uint64) backends.ConfigItem {
	return backends.ConfigItem{Key: key, Value: value, Version: version}
}

func put(at int, value string, version uint64) linearize.Received {
	return linearize.Received{At: ms(at), Event: backends.ConfigEvent{Type: backends.ConfigPut, Item: item(value, version)}}
}

func resync(at int) linearize.Received {
	return linearize.Received{At: ms(at), Event: backends.ConfigEvent{Type: backends.ConfigResync, Item: backends.ConfigItem{Key: key}}}
}

// acked is a write that answered success; version 0 = the answer had none.
func acked(call, ret int, value string, version uint64) linearize.Write {
	return linearize.Write{Key: key, Value: value, Version: version, Acked: true, Call: ms(call), Return: ms(ret)}
}

func unknown(call int, value string) linearize.Write {
	return linearize.Write{Key: key, Value: value, Call: ms(call)}
}

func TestCheckWatchAccepts(t *testing.T) {
	cases := map[string]linearize.WatchHistory{
		"every write delivered": {
			Events: []linearize.Received{put(2, "a", 10), put(4, "b", 11), put(6, "c", 12)},
			Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 0), acked(4, 5, "c", 12)},
			Final:  []backends.ConfigItem{item("c", 12)},
		},
		"a resync covers a write by version": {
			Events: []linearize.Received{put(2, "a", 10), resync(9), put(9, "c", 12)},
			Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 11), acked(4, 5, "c", 12)},
			Final:  []backends.ConfigItem{item("c", 12)},
		},
		"a resync covers a facade set by time": {
			Events: []linearize.Received{put(2, "a", 10), resync(9), put(9, "c", 12)},
			Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 0), acked(4, 5, "c", 0)},
			Final:  []backends.ConfigItem{item("c", 12)},
		},
		"a write with an unknown outcome need not appear": {
			Events: []linearize.Received{put(2, "a", 10)},
			Writes: []linearize.Write{acked(0, 1, "a", 10), unknown(3, "x")},
			Final:  []backends.ConfigItem{item("a", 10)},
		},
		"a write with an unknown outcome that applied": {
			Events: []linearize.Received{put(2, "a", 10), put(30, "x", 11)},
			Writes: []linearize.Write{acked(0, 1, "a", 10), unknown(3, "x")},
			Final:  []backends.ConfigItem{item("x", 11)},
		},
		"from an initial state": {
			Initial: []backends.ConfigItem{item("z", 5)},
			Events:  []linearize.Received{put(2, "a", 10)},
			Writes:  []linearize.Write{acked(0, 1, "a", 10)},
			Final:   []backends.ConfigItem{item("a", 10)},
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Empty(t, linearize.CheckWatch(h))
		})
	}
}

// TestCheckWatchRejects shows the watch checker failing the records of
// broken watches, one defect each.
func TestCheckWatchRejects(t *testing.T) {
	cases := map[string]struct {
		h    linearize.WatchHistory
		want []linearize.ViolationKind
	}{
		"an event missed without a resync": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(6, "c", 12)},
				Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 11), acked(4, 5, "c", 12)},
				Final:  []backends.ConfigItem{item("c", 12)},
			},
			want: []linearize.ViolationKind{linearize.Missed},
		},
		"a facade set missed without a resync": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(6, "c", 12)},
				Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 0), acked(4, 5, "c", 12)},
				Final:  []backends.ConfigItem{item("c", 12)},
			},
			want: []linearize.ViolationKind{linearize.Missed},
		},
		"a resync in another gap excuses nothing": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(6, "c", 12), resync(20), put(20, "d", 13)},
				Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 11), acked(4, 5, "c", 12), acked(10, 11, "d", 13)},
				Final:  []backends.ConfigItem{item("d", 13)},
			},
			want: []linearize.ViolationKind{linearize.Missed},
		},
		"a facade set outside the resynced gap's time": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(6, "c", 12), resync(20), put(20, "d", 13)},
				// b returned before c was delivered: it belongs between a and c.
				Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 0), acked(4, 5, "c", 12), acked(10, 11, "d", 13)},
				Final:  []backends.ConfigItem{item("d", 13)},
			},
			want: []linearize.ViolationKind{linearize.Missed},
		},
		"versions go backwards": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(6, "c", 12), put(7, "b", 11)},
				Writes: []linearize.Write{acked(0, 1, "a", 10), acked(2, 3, "b", 11), acked(4, 5, "c", 12)},
				Final:  []backends.ConfigItem{item("c", 12)},
			},
			// The late b also leaves the view behind the store.
			want: []linearize.ViolationKind{linearize.Reordered, linearize.Diverged},
		},
		"an event delivered twice": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(3, "a", 10)},
				Writes: []linearize.Write{acked(0, 1, "a", 10)},
				Final:  []backends.ConfigItem{item("a", 10)},
			},
			want: []linearize.ViolationKind{linearize.Reordered},
		},
		"the view ends behind the store": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10)},
				Writes: []linearize.Write{acked(0, 1, "a", 10), unknown(3, "x")},
				Final:  []backends.ConfigItem{item("x", 11)},
			},
			want: []linearize.ViolationKind{linearize.Diverged},
		},
		"a value nobody wrote": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 10), put(3, "q", 11)},
				Writes: []linearize.Write{acked(0, 1, "a", 10)},
				Final:  []backends.ConfigItem{item("q", 11)},
			},
			want: []linearize.ViolationKind{linearize.Phantom},
		},
		"a value at another version than written": {
			h: linearize.WatchHistory{
				Events: []linearize.Received{put(2, "a", 9)},
				Writes: []linearize.Write{acked(0, 1, "a", 10)},
				Final:  []backends.ConfigItem{item("a", 9)},
			},
			want: []linearize.ViolationKind{linearize.Phantom},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			vs := linearize.CheckWatch(c.h)
			kinds := make([]linearize.ViolationKind, 0, len(vs))
			for _, v := range vs {
				kinds = append(kinds, v.Kind)
				t.Log(v)
			}
			assert.Equal(t, c.want, kinds)
		})
	}
}

func TestFold(t *testing.T) {
	del := linearize.Received{Event: backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: "j", Version: 13}}}
	view := linearize.Fold(
		[]backends.ConfigItem{{Key: "j", Value: "x", Version: 3}},
		[]linearize.Received{put(1, "a", 10), resync(2), put(3, "b", 12), del})
	assert.Equal(t, map[string]backends.ConfigItem{key: item("b", 12)}, view)
}
