package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "snap.json")
	require.NoError(t, writeFileAtomic(path, []byte("one")))
	require.NoError(t, writeFileAtomic(path, []byte("two")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "two", string(got))

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "snapshots may hold secrets")
}

func TestWriteFileAtomicFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.json")
	require.NoError(t, writeFileAtomic(path, []byte("old")))
	// Renaming over a directory fails: the old content must survive and no
	// temporary file may remain.
	target := filepath.Join(dir, "adir")
	require.NoError(t, os.Mkdir(target, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(target, "x"), nil, 0o600))
	require.Error(t, writeFileAtomic(target, []byte("new")))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "only snap.json and adir")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got))
}

// newTestSnapshot builds a snapshot wrapper without a backend; only its
// bookkeeping and file handling are exercised.
func newTestSnapshot(t *testing.T, path string) *Fallback {
	t.Helper()
	var cc backends.ConfigCenter = unusedCenter{} // never called
	s, err := New(cc, path, Options{})
	require.NoError(t, err)
	return s
}

func TestSnapshotPersistsAndReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.json")
	s := newTestSnapshot(t, path)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written before there is something to keep")

	s.update(func() bool {
		return s.replacePrefix("app/", []backends.ConfigItem{{Key: "app/a", Value: "1", Version: 3}, {Key: "app/b", Value: "2", Version: 4}})
	})
	s.update(func() bool { return s.put(backends.ConfigItem{Key: "x", Value: "y", Version: 9}) })
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	// Recording what is already known does not rewrite the file.
	s.update(func() bool { return s.put(backends.ConfigItem{Key: "x", Value: "y", Version: 9}) })
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	re := newTestSnapshot(t, path)
	assert.Equal(t, map[string]backends.ConfigItem{
		"app/a": {Key: "app/a", Value: "1", Version: 3},
		"app/b": {Key: "app/b", Value: "2", Version: 4},
		"x":     {Key: "x", Value: "y", Version: 9},
	}, re.items, "what was recorded comes back")
	assert.True(t, re.covered("app/"))
	assert.True(t, re.covered("app/sub/"))
	assert.False(t, re.covered("ap"))
	assert.False(t, re.covered("x"), "a key read alone does not make its prefix complete")

	// A fresh listing replaces what the prefix held.
	re.update(func() bool {
		return re.replacePrefix("app/", []backends.ConfigItem{{Key: "app/b", Value: "3", Version: 7}})
	})
	assert.NotContains(t, re.items, "app/a")
	assert.Equal(t, "3", re.items["app/b"].Value)
	// A wider listing subsumes narrower ones.
	re.update(func() bool { return re.replacePrefix("", nil) })
	assert.Empty(t, re.items)
	assert.Equal(t, map[string]struct{}{"": {}}, re.prefixes)
}

func TestSnapshotLoadErrors(t *testing.T) {
	dir := t.TempDir()
	var cc backends.ConfigCenter = unusedCenter{}

	corrupt := filepath.Join(dir, "corrupt.json")
	require.NoError(t, os.WriteFile(corrupt, []byte("{not json"), 0o600))
	_, err := New(cc, corrupt, Options{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	future := filepath.Join(dir, "future.json")
	require.NoError(t, os.WriteFile(future, []byte(`{"format": 99}`), 0o600))
	_, err = New(cc, future, Options{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	_, err = New(nil, filepath.Join(dir, "x"), Options{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = New(cc, "", Options{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = New(cc, filepath.Join(dir, "x"), Options{ReadTimeout: -time.Second})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
}

func TestSnapshotShouldFallback(t *testing.T) {
	s := &Fallback{}
	bg := context.Background()
	assert.True(t, s.shouldFallback(bg, bg, backends.Unavailable("get", errors.New("connection refused"))))
	assert.False(t, s.shouldFallback(bg, bg, backends.ErrNotFound))
	assert.False(t, s.shouldFallback(bg, bg, backends.Invalid("key", "", "must not be empty")))

	expired, cancel := context.WithTimeout(bg, -time.Second)
	defer cancel()
	assert.True(t, s.shouldFallback(bg, expired, context.DeadlineExceeded), "our read timeout ran out")

	cancelled, cancel2 := context.WithCancel(bg)
	cancel2()
	assert.False(t, s.shouldFallback(cancelled, cancelled, context.Canceled), "the caller gave up")
	assert.False(t, s.shouldFallback(bg, bg, context.DeadlineExceeded), "a deadline that is not ours or the caller's")
}

// unusedCenter is a config center whose methods must never be called
// (each would panic on the nil interface it embeds).
type unusedCenter struct{ backends.ConfigCenter }
