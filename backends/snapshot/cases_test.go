package snapshot_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/snapshot"
)

// TestSnapshot runs the case the config conformance suite ran for every
// implementation until the snapshot fallback became a package of its own.
// The fallback reads only through the ConfigCenter interface, so the case
// runs once, against one real Redis that it stops and starts; the subtest
// name is the former case name.
func TestSnapshot(t *testing.T) {
	t.Run("snapshot-fallback-while-down", snapshotFallback)
}

// snapshotFallback: values read while the backend was up are served, marked
// stale, while it is down — also by a new process loading the file — and
// writes fail.
func snapshotFallback(t *testing.T) {
	srv, cc := freshConfig(t)
	require.True(t, waitHealthy(t, "before "+t.Name(), configHealthy(cc)))
	t.Cleanup(func() { waitHealthy(t, "after "+t.Name(), configHealthy(cc)) })
	path := filepath.Join(t.TempDir(), "config-snapshot.json")
	opts := snapshot.Options{ReadTimeout: time.Second}
	snap, err := snapshot.New(cc, path, opts)
	require.NoError(t, err)

	ctx := ctxFor(t, opTimeout)
	require.NoError(t, snap.Set(ctx, "app/host", "h1"))
	require.NoError(t, snap.Set(ctx, "app/port", "80"))
	require.NoError(t, snap.Set(ctx, "other", "x"))
	live, err := snap.ListItems(ctx, "app/")
	require.NoError(t, err)
	require.Len(t, live, 2)
	otherItem, err := snap.Lookup(ctx, "other")
	require.NoError(t, err)
	assert.False(t, otherItem.Stale)
	assert.False(t, snap.Stale())

	start := stopServer(t, srv)

	isDown := func(err error) bool {
		return errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
	}
	check := func(sf *snapshot.Fallback, who string) {
		t.Helper()
		ctx := ctxFor(t, opTimeout)
		it, err := sf.Lookup(ctx, "app/host")
		require.NoError(t, err, "%s: get item while down", who)
		assert.Equal(t, "h1", it.Value)
		assert.True(t, it.Stale, "%s: served from the snapshot, so stale", who)
		assert.Equal(t, live[0].Version, it.Version, "%s: the version last seen", who)
		assert.True(t, sf.Stale())
		other, err := sf.GetItem(ctx, "other")
		require.NoError(t, err, "%s: get while down", who)
		assert.Equal(t, "x", other.Value)
		listed, err := sf.ListItems(ctx, "app/")
		require.NoError(t, err, "%s: list while down", who)
		assert.Equal(t, map[string]string{"app/host": "h1", "app/port": "80"}, backends.ConfigValues(listed))
		items, err := sf.LookupPrefix(ctx, "app/")
		require.NoError(t, err)
		for _, it := range items {
			assert.True(t, it.Stale, "%s: listed item %s stale", who, it.Key)
		}
		_, err = sf.GetItem(ctx, "never-seen")
		assert.True(t, isDown(err), "%s: a key the snapshot never saw: want unavailable, got %v", who, err)
		_, err = sf.ListItems(ctx, "zzz/")
		assert.True(t, isDown(err), "%s: a prefix never listed: want unavailable, got %v", who, err)
	}
	check(snap, "running process")

	err = snap.Set(ctx, "app/host", "h2")
	assert.True(t, isDown(err), "a write while down must fail, got %v", err)
	_, err = snap.CompareAndSet(ctx, "app/host", "h2", live[0].Version)
	assert.True(t, isDown(err), "compare-and-set while down must fail, got %v", err)
	it, err := snap.GetItem(ctx, "app/host")
	require.NoError(t, err)
	assert.Equal(t, "h1", it.Value, "the failed write changed nothing")

	// A process started while the backend is down serves the file.
	again, err := snapshot.New(cc, path, opts)
	require.NoError(t, err)
	check(again, "restarted process")

	start()
	require.True(t, waitHealthy(t, "restart", configHealthy(cc)))
	// Back up: answers come from the backend again (Redis lost its data,
	// etcd kept it; either way nothing is stale).
	require.Eventually(t, func() bool {
		it, err := snap.Lookup(ctxFor(t, opTimeout), "app/host")
		return (err == nil && !it.Stale) || errors.Is(err, backends.ErrNotFound)
	}, 30*time.Second, 100*time.Millisecond, "reads did not return to the backend")
	assert.False(t, snap.Stale())
	require.NoError(t, snap.Set(ctxFor(t, opTimeout), "app/host", "h3"))
	requireConfigValue(t, snap, "app/host", "h3")
}
