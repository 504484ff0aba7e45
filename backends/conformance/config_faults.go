package conformance

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// The fault cases trim history, stop or restart target.Server. RunConfig
// runs them after every contract case, and each leaves the server up and
// healthy when it returns.

func (s configSuite) server(t *testing.T) Server {
	t.Helper()
	require.NotNil(t, s.target.Server, "conformance: %s has no Server for fault cases", s.target.Name)
	return s.target.Server
}

// configHealthy is a health check through a config center: a read that
// reaches the backend (found or not).
func configHealthy(cc backends.ConfigCenter) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := cc.GetItem(ctx, "health-probe")
		if errors.Is(err, backends.ErrNotFound) {
			return nil
		}
		return err
	}
}

// gapResync: the watcher's history is gone; resuming must yield a resync
// marker and then exactly the difference between what the watcher knew and
// the current state.
func (s configSuite) gapResync(t *testing.T) {
	srv := s.server(t)
	cc := s.freshReady(t)
	a := setItem(t, cc, "g/a", "1")
	b := setItem(t, cc, "g/b", "2")
	e := setItem(t, cc, "g/e", "same")
	known := map[string]uint64{a.Key: a.Version, b.Key: b.Version, e.Key: e.Version}
	from := e.Version

	// Changes the watcher never sees.
	setKey(t, cc, "g/b", "3")
	delKey(t, cc, "g/a")
	setKey(t, cc, "g/c", "4")
	setKey(t, cc, "g/d", "5") // created and deleted: no difference
	delKey(t, cc, "g/d")
	setKey(t, cc, "h/x", "outside")
	srv.ForceGap(t)

	w, _ := watchConfig(t, cc, "g/", backends.WatchOptions{Prefix: true, FromVersion: from, Known: known})
	want := []ev{put("g/b", "3"), del("g/a"), put("g/c", "4")}
	evs := w.waitFor(t, opTimeout, "resync and the difference", func(evs []backends.ConfigEvent) bool {
		got := compact(evs)
		for _, x := range want {
			if !slices.Contains(got, x) {
				return false
			}
		}
		return true
	})
	require.Equal(t, backends.ConfigResync, evs[0].Type, "the first event after a gap is the resync marker; events: %v", compact(evs))
	// A marker written now proves nothing else is queued before it.
	setKey(t, cc, "g/z", "marker")
	evs = untilPut(t, w, "g/z", "marker")
	diff := slices.DeleteFunc(compact(evs[1:]), func(x ev) bool { return x.Key == "g/z" })
	assert.ElementsMatch(t, want, diff, "exactly the difference, in any order")
	for _, x := range evs[1:] {
		assert.NotEqual(t, backends.ConfigResync, x.Type, "a second resync")
		if x.Type == backends.ConfigPut && x.Item.Key != "g/z" {
			assert.Equal(t, getItem(t, cc, x.Item.Key), x.Item, "a resync put carries the current item")
		}
	}
}

// watchContinuesAfterRestart: a live prefix watcher keeps working across a
// server restart and its view converges to the server's state (Redis comes
// back empty, which the watcher must learn too).
func (s configSuite) watchContinuesAfterRestart(t *testing.T) {
	srv := s.server(t)
	cc := s.freshReady(t)
	t.Cleanup(func() { waitHealthy(t, "after "+t.Name(), configHealthy(cc)) })
	from := setItem(t, cc, "base", "x").Version
	w, _ := watchConfig(t, cc, "s/", backends.WatchOptions{Prefix: true, FromVersion: from})
	setKey(t, cc, "s/a", "1")
	setKey(t, cc, "s/c", "keep")
	untilPut(t, w, "s/c", "keep")

	start := stopServer(t, srv)
	start()
	require.True(t, waitHealthy(t, "restart", configHealthy(cc)))
	mark := len(w.all())

	retry(t, 30*time.Second, "set s/b", func(ctx context.Context) error { return cc.Set(ctx, "s/b", "2") })
	retry(t, 30*time.Second, "set s/a", func(ctx context.Context) error { return cc.Set(ctx, "s/a", "3") })

	var truth map[string]string
	w.waitFor(t, 30*time.Second, "watcher view equals the server's", func(evs []backends.ConfigEvent) bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		items, err := cc.ListItems(ctx, "s/")
		if err != nil {
			return false
		}
		truth = backends.ConfigValues(items)
		view := applyConfig(map[string]string{}, evs)
		return len(evs) > mark && assert.ObjectsAreEqual(truth, view)
	})
	after := compact(w.all()[mark:])
	assert.Contains(t, after, put("s/b", "2"), "a write after the restart was missed")
	assert.Contains(t, after, put("s/a", "3"), "a write after the restart was missed")
	assert.Equal(t, "2", truth["s/b"])
}
