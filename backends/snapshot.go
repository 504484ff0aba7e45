package backends

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SnapshotOptions configures NewSnapshotFallback.
type SnapshotOptions struct {
	// ReadTimeout bounds every read sent to the backend, so that a backend
	// that does not answer (rather than refusing at once) still falls back
	// to the snapshot in time. Default: 0, only the caller's ctx bounds it.
	ReadTimeout time.Duration
	// Logger receives snapshot file errors (they never fail a read).
	// Default: discard.
	Logger *slog.Logger
}

// SnapshotFallback is a ConfigCenter that remembers the last values it saw
// in a local file and serves them while the backend is unreachable.
//
// Every successful read (Get, GetItem, List, ListItems), write and watch
// event through the wrapper updates the snapshot, which is persisted to
// the file atomically (temporary file + rename) whenever it changes. When a
// read fails with ErrUnavailable — or runs into a deadline, see
// SnapshotOptions.ReadTimeout — the wrapper answers from the snapshot
// instead:
//
//   - GetItem and ListItems return the remembered items with Stale = true
//     (items written through Set carry Version 0 until read back);
//   - Get and List return the remembered values and a nil error; use
//     GetItem/ListItems or Stale to tell that they are stale;
//   - a key the snapshot does not hold, or a List prefix that was never
//     listed in full, still returns the backend's error: the wrapper never
//     invents an answer it has not seen.
//
// Writes (Set, Delete, CompareAndSet, Rollback), History and watches always
// go to the backend; while it is down they fail with its error and nothing is
// queued. The file is loaded on construction, so a process restarted while
// the backend is down serves what the previous run saw. Use one file per
// ConfigCenter (namespace and name). SnapshotFallback does not own the
// wrapped ConfigCenter: closing it is the caller's business.
type SnapshotFallback struct {
	cc      ConfigCenter
	path    string
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	items    map[string]ConfigItem
	prefixes map[string]struct{} // prefixes listed in full
	stale    atomic.Bool
}

var _ ConfigCenter = (*SnapshotFallback)(nil)

// snapshotFile is the on-disk format.
type snapshotFile struct {
	Format   int            `json:"format"`
	SavedAt  time.Time      `json:"saved_at"`
	Prefixes []string       `json:"prefixes"`
	Items    []snapshotItem `json:"items"`
}

type snapshotItem struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

const snapshotFormat = 1

// NewSnapshotFallback wraps cc and loads the snapshot at path, if the file
// exists. A file that cannot be parsed is an error (ErrInvalidArgument):
// delete it to start afresh.
func NewSnapshotFallback(cc ConfigCenter, path string, opts SnapshotOptions) (*SnapshotFallback, error) {
	if cc == nil {
		return nil, Invalid("config center", "<nil>", "must not be nil")
	}
	if path == "" {
		return nil, Invalid("snapshot path", path, "must not be empty")
	}
	if opts.ReadTimeout < 0 {
		return nil, Invalid("snapshot read timeout", opts.ReadTimeout, "must not be negative")
	}
	s := &SnapshotFallback{
		cc:       cc,
		path:     path,
		timeout:  opts.ReadTimeout,
		log:      opts.Logger,
		items:    make(map[string]ConfigItem),
		prefixes: make(map[string]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f, err := loadSnapshot(path)
	if err != nil {
		return nil, err
	}
	for _, it := range f.Items {
		s.items[it.Key] = ConfigItem{Key: it.Key, Value: it.Value, Version: it.Version}
	}
	for _, p := range f.Prefixes {
		s.prefixes[p] = struct{}{}
	}
	return s, nil
}

// Path returns the snapshot file.
func (s *SnapshotFallback) Path() string { return s.path }

// Stale reports whether the latest read was answered from the snapshot
// because the backend was unreachable.
func (s *SnapshotFallback) Stale() bool { return s.stale.Load() }

// Get returns the value of key, from the snapshot while the backend is down.
func (s *SnapshotFallback) Get(ctx context.Context, key string) (string, error) {
	it, err := s.GetItem(ctx, key)
	if err != nil {
		return "", err
	}
	return it.Value, nil
}

// GetItem returns the item; Stale is set when it came from the snapshot.
func (s *SnapshotFallback) GetItem(ctx context.Context, key string) (ConfigItem, error) {
	if err := ValidateKey(key); err != nil {
		return ConfigItem{}, err
	}
	rctx, cancel := s.readContext(ctx)
	it, err := s.cc.GetItem(rctx, key)
	fallback := err != nil && s.shouldFallback(ctx, rctx, err)
	cancel()
	switch {
	case err == nil:
		s.stale.Store(false)
		s.update(func() bool { return s.put(it) })
		return it, nil
	case errors.Is(err, ErrNotFound):
		s.stale.Store(false)
		s.update(func() bool { return s.remove(key) })
		return ConfigItem{}, err
	case fallback:
		s.mu.Lock()
		cached, ok := s.items[key]
		s.mu.Unlock()
		if !ok {
			return ConfigItem{}, err
		}
		s.stale.Store(true)
		cached.Stale = true
		return cached, nil
	}
	return ConfigItem{}, err
}

// List returns the values under prefix, from the snapshot while the backend
// is down (only for prefixes listed in full before).
func (s *SnapshotFallback) List(ctx context.Context, prefix string) (map[string]string, error) {
	items, err := s.ListItems(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return ConfigValues(items), nil
}

// ListItems returns the items under prefix sorted by key; Stale is set on
// each item when they came from the snapshot.
func (s *SnapshotFallback) ListItems(ctx context.Context, prefix string) ([]ConfigItem, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	rctx, cancel := s.readContext(ctx)
	items, err := s.cc.ListItems(rctx, prefix)
	fallback := err != nil && s.shouldFallback(ctx, rctx, err)
	cancel()
	if err == nil {
		s.stale.Store(false)
		s.update(func() bool { return s.replacePrefix(prefix, items) })
		return items, nil
	}
	if !fallback {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.covered(prefix) {
		return nil, err
	}
	out := make([]ConfigItem, 0)
	for k, it := range s.items {
		if strings.HasPrefix(k, prefix) {
			it.Stale = true
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b ConfigItem) int { return strings.Compare(a.Key, b.Key) })
	s.stale.Store(true)
	return out, nil
}

// Set writes through to the backend and remembers the value (with Version 0,
// unknown until read back) on success.
func (s *SnapshotFallback) Set(ctx context.Context, key, value string) error {
	if err := s.cc.Set(ctx, key, value); err != nil {
		return err
	}
	s.update(func() bool { return s.put(ConfigItem{Key: key, Value: value}) })
	return nil
}

// Delete writes through to the backend and forgets the key on success.
func (s *SnapshotFallback) Delete(ctx context.Context, key string) error {
	if err := s.cc.Delete(ctx, key); err != nil {
		return err
	}
	s.update(func() bool { return s.remove(key) })
	return nil
}

// CompareAndSet writes through to the backend and remembers the new item.
func (s *SnapshotFallback) CompareAndSet(ctx context.Context, key, value string, expected uint64) (ConfigItem, error) {
	it, err := s.cc.CompareAndSet(ctx, key, value, expected)
	if err != nil {
		return it, err
	}
	s.update(func() bool { return s.put(it) })
	return it, nil
}

// Rollback writes through to the backend and remembers the new item.
func (s *SnapshotFallback) Rollback(ctx context.Context, key string, version uint64) (ConfigItem, error) {
	it, err := s.cc.Rollback(ctx, key, version)
	if err != nil {
		return it, err
	}
	s.update(func() bool { return s.put(it) })
	return it, nil
}

// History always asks the backend; the snapshot keeps no history.
func (s *SnapshotFallback) History(ctx context.Context, key string, limit int) ([]ConfigItem, error) {
	return s.cc.History(ctx, key, limit)
}

// Watch is WatchWith(ctx, key, WatchOptions{}).
func (s *SnapshotFallback) Watch(ctx context.Context, key string) (<-chan ConfigEvent, error) {
	return s.WatchWith(ctx, key, WatchOptions{})
}

// WatchWith watches through the backend and records every event it passes
// on, so a long-lived watch keeps the snapshot current.
func (s *SnapshotFallback) WatchWith(ctx context.Context, key string, opts WatchOptions) (<-chan ConfigEvent, error) {
	in, err := s.cc.WatchWith(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	out := make(chan ConfigEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-in:
				if !ok {
					return
				}
				switch ev.Type {
				case ConfigPut:
					s.update(func() bool { return s.put(ev.Item) })
				case ConfigDelete:
					s.update(func() bool { return s.remove(ev.Item.Key) })
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (s *SnapshotFallback) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return ctx, func() {}
}

// shouldFallback: the backend is unreachable, or did not answer before the
// deadline. A caller that cancelled gets its error, not stale data.
func (s *SnapshotFallback) shouldFallback(ctx, rctx context.Context, err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(rctx.Err(), context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled)
}

// update runs change under the lock and persists the snapshot if it changed.
func (s *SnapshotFallback) update(change func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !change() {
		return
	}
	if err := s.saveLocked(); err != nil {
		s.log.Warn("config snapshot: save failed", "path", s.path, "err", err)
	}
}

func (s *SnapshotFallback) put(it ConfigItem) bool {
	it.Stale = false
	if old, ok := s.items[it.Key]; ok && old == it {
		return false
	}
	s.items[it.Key] = it
	return true
}

func (s *SnapshotFallback) remove(key string) bool {
	if _, ok := s.items[key]; !ok {
		return false
	}
	delete(s.items, key)
	return true
}

func (s *SnapshotFallback) replacePrefix(prefix string, items []ConfigItem) bool {
	changed := false
	if !s.covered(prefix) {
		// Narrower prefixes are subsumed by this one.
		for p := range s.prefixes {
			if strings.HasPrefix(p, prefix) {
				delete(s.prefixes, p)
			}
		}
		s.prefixes[prefix] = struct{}{}
		changed = true
	}
	fresh := make(map[string]struct{}, len(items))
	for _, it := range items {
		fresh[it.Key] = struct{}{}
		changed = s.put(it) || changed
	}
	for k := range s.items {
		if _, ok := fresh[k]; !ok && strings.HasPrefix(k, prefix) {
			delete(s.items, k)
			changed = true
		}
	}
	return changed
}

// covered reports whether prefix lies inside a prefix that was listed in
// full, so the snapshot knows every key under it.
func (s *SnapshotFallback) covered(prefix string) bool {
	for p := range s.prefixes {
		if strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}

func (s *SnapshotFallback) saveLocked() error {
	f := snapshotFile{Format: snapshotFormat, SavedAt: time.Now().UTC()}
	for p := range s.prefixes {
		f.Prefixes = append(f.Prefixes, p)
	}
	slices.Sort(f.Prefixes)
	for _, it := range s.items {
		f.Items = append(f.Items, snapshotItem{Key: it.Key, Value: it.Value, Version: it.Version})
	}
	slices.SortFunc(f.Items, func(a, b snapshotItem) int { return strings.Compare(a.Key, b.Key) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, data)
}

func loadSnapshot(path string) (snapshotFile, error) {
	var f snapshotFile
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("config snapshot: read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, Invalid("snapshot file", path, "cannot be parsed: "+err.Error())
	}
	if f.Format != snapshotFormat {
		return f, Invalid("snapshot file", path, fmt.Sprintf("unknown format %d", f.Format))
	}
	return f, nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path, so readers (and a process restarted
// after a crash) see either the old or the new snapshot, never a torn one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; failure here is not worth an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
