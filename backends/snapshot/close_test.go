package snapshot_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/snapshot"
)

// TestFallbackClose: Close ends the watches opened through the fallback and
// refuses later calls, and leaves the wrapped center open.
func TestFallbackClose(t *testing.T) {
	_, cc := freshConfig(t)
	snap, err := snapshot.New(cc, filepath.Join(t.TempDir(), "snap.json"), snapshot.Options{})
	require.NoError(t, err)
	ctx := ctxFor(t, opTimeout)
	ch, err := snap.WatchWith(ctx, "k", backends.WatchOptions{})
	require.NoError(t, err)

	require.NoError(t, snap.Close())
	for range ch {
		// drain: the channel must close without ctx ending
	}
	require.NoError(t, snap.Close(), "close is idempotent")
	_, err = snap.GetItem(ctx, "k")
	assert.ErrorIs(t, err, backends.ErrClosed)
	assert.ErrorIs(t, snap.Set(ctx, "k", "v"), backends.ErrClosed)
	_, err = snap.WatchWith(ctx, "k", backends.WatchOptions{})
	assert.ErrorIs(t, err, backends.ErrClosed)

	require.NoError(t, cc.Set(ctx, "k", "v"), "the wrapped center stays open")
	requireConfigValue(t, cc, "k", "v")
}
