package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-go/baton/backends"
)

// Options configures New.
type Options struct {
	// ReadTimeout bounds every read sent to the backend, so that a backend
	// that does not answer (rather than refusing at once) still falls back
	// to the snapshot in time. Default: 0, only the caller's ctx bounds it.
	ReadTimeout time.Duration
	// Logger receives snapshot file errors (they never fail a read).
	// Default: discard.
	Logger *slog.Logger
}

// Item is a configuration item and whether it came from the snapshot file.
type Item struct {
	backends.ConfigItem
	// Stale is true when the item was served from the snapshot because the
	// backend was unreachable.
	Stale bool
}

// Fallback is a backends.ConfigCenter that remembers the last values it saw
// and serves them while the backend is unreachable.
//
// Every successful read, write and watch event through it updates the
// snapshot, which is written to the file atomically whenever it changes.
// When a read fails with backends.ErrUnavailable, or runs out of
// Options.ReadTimeout, the remembered answer is returned instead, marked
// stale; a key the snapshot does not hold, or a prefix never listed in
// full, still returns the backend's error. Writes, History and watches
// always go to the backend. The file is loaded by New, so a process started
// while the backend is down serves what the previous run saw. Use one file
// per config namespace.
type Fallback struct {
	cc      backends.ConfigCenter
	path    string
	timeout time.Duration
	log     *slog.Logger

	life   context.Context // ended by Close; parent of every watch relay
	stop   context.CancelFunc
	relays sync.WaitGroup

	mu       sync.Mutex
	items    map[string]backends.ConfigItem
	prefixes map[string]struct{} // prefixes listed in full
	stale    atomic.Bool
}

var _ backends.ConfigCenter = (*Fallback)(nil)

// New wraps cc and loads the snapshot at path, if the file exists. A file
// that cannot be parsed is an error (backends.ErrInvalidArgument): delete
// it to start afresh. The Fallback does not own cc: closing cc is the
// caller's business.
func New(cc backends.ConfigCenter, path string, opts Options) (*Fallback, error) {
	if cc == nil {
		return nil, backends.Invalid("config center", "<nil>", "must not be nil")
	}
	if path == "" {
		return nil, backends.Invalid("snapshot path", path, "must not be empty")
	}
	if opts.ReadTimeout < 0 {
		return nil, backends.Invalid("snapshot read timeout", opts.ReadTimeout, "must not be negative")
	}
	s := &Fallback{
		cc:       cc,
		path:     path,
		timeout:  opts.ReadTimeout,
		log:      opts.Logger,
		items:    make(map[string]backends.ConfigItem),
		prefixes: make(map[string]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.life, s.stop = context.WithCancel(context.Background())
	f, err := load(path)
	if err != nil {
		s.stop()
		return nil, err
	}
	for _, it := range f.Items {
		s.items[it.Key] = backends.ConfigItem{Key: it.Key, Value: it.Value, Version: it.Version}
	}
	for _, p := range f.Prefixes {
		s.prefixes[p] = struct{}{}
	}
	return s, nil
}

// Path returns the snapshot file.
func (s *Fallback) Path() string { return s.path }

// Stale reports whether the latest read was answered from the snapshot
// because the backend was unreachable.
func (s *Fallback) Stale() bool { return s.stale.Load() }

// Close ends the watches opened through the Fallback (their channels
// close); later calls return backends.ErrClosed. It does not close the
// wrapped ConfigCenter. Close is idempotent.
func (s *Fallback) Close() error {
	s.stop()
	s.relays.Wait()
	return nil
}

func (s *Fallback) check(op string) error {
	if s.life.Err() != nil {
		return fmt.Errorf("config snapshot: %s: %w", op, backends.ErrClosed)
	}
	return nil
}

// Lookup is GetItem that also says whether the item came from the snapshot.
func (s *Fallback) Lookup(ctx context.Context, key string) (Item, error) {
	if err := s.check("get"); err != nil {
		return Item{}, err
	}
	if err := backends.ValidateKey(key); err != nil {
		return Item{}, err
	}
	rctx, cancel := s.readContext(ctx)
	it, err := s.cc.GetItem(rctx, key)
	fallback := err != nil && s.shouldFallback(ctx, rctx, err)
	cancel()
	switch {
	case err == nil:
		s.stale.Store(false)
		s.update(func() bool { return s.put(it) })
		return Item{ConfigItem: it}, nil
	case errors.Is(err, backends.ErrNotFound):
		s.stale.Store(false)
		s.update(func() bool { return s.remove(key) })
		return Item{}, err
	case fallback:
		s.mu.Lock()
		cached, ok := s.items[key]
		s.mu.Unlock()
		if !ok {
			return Item{}, err
		}
		s.stale.Store(true)
		return Item{ConfigItem: cached, Stale: true}, nil
	}
	return Item{}, err
}

// LookupPrefix is ListItems that also says whether the items came from the
// snapshot (then every one of them is stale).
func (s *Fallback) LookupPrefix(ctx context.Context, prefix string) ([]Item, error) {
	if err := s.check("list"); err != nil {
		return nil, err
	}
	if err := backends.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	rctx, cancel := s.readContext(ctx)
	items, err := s.cc.ListItems(rctx, prefix)
	fallback := err != nil && s.shouldFallback(ctx, rctx, err)
	cancel()
	if err == nil {
		s.stale.Store(false)
		s.update(func() bool { return s.replacePrefix(prefix, items) })
		out := make([]Item, len(items))
		for i, it := range items {
			out[i] = Item{ConfigItem: it}
		}
		return out, nil
	}
	if !fallback {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.covered(prefix) {
		return nil, err
	}
	out := make([]Item, 0)
	for k, it := range s.items {
		if strings.HasPrefix(k, prefix) {
			out = append(out, Item{ConfigItem: it, Stale: true})
		}
	}
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
	s.stale.Store(true)
	return out, nil
}

// GetItem returns the item, from the snapshot while the backend is down;
// Lookup also tells which.
func (s *Fallback) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	it, err := s.Lookup(ctx, key)
	return it.ConfigItem, err
}

// ListItems returns the items under prefix sorted by key, from the snapshot
// while the backend is down (only for prefixes listed in full before);
// LookupPrefix also tells which.
func (s *Fallback) ListItems(ctx context.Context, prefix string) ([]backends.ConfigItem, error) {
	items, err := s.LookupPrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]backends.ConfigItem, len(items))
	for i, it := range items {
		out[i] = it.ConfigItem
	}
	return out, nil
}

// Set writes through to the backend and remembers the value (with Version 0,
// unknown until read back) on success.
func (s *Fallback) Set(ctx context.Context, key, value string) error {
	if err := s.check("set"); err != nil {
		return err
	}
	if err := s.cc.Set(ctx, key, value); err != nil {
		return err
	}
	s.update(func() bool { return s.put(backends.ConfigItem{Key: key, Value: value}) })
	return nil
}

// Delete writes through to the backend and forgets the key on success.
func (s *Fallback) Delete(ctx context.Context, key string) error {
	if err := s.check("delete"); err != nil {
		return err
	}
	if err := s.cc.Delete(ctx, key); err != nil {
		return err
	}
	s.update(func() bool { return s.remove(key) })
	return nil
}

// CompareAndSet writes through to the backend and remembers the new item.
func (s *Fallback) CompareAndSet(ctx context.Context, key, value string, expected uint64) (backends.ConfigItem, error) {
	if err := s.check("compare-and-set"); err != nil {
		return backends.ConfigItem{}, err
	}
	it, err := s.cc.CompareAndSet(ctx, key, value, expected)
	if err != nil {
		return it, err
	}
	s.update(func() bool { return s.put(it) })
	return it, nil
}

// Rollback writes through to the backend and remembers the new item.
func (s *Fallback) Rollback(ctx context.Context, key string, version uint64) (backends.ConfigItem, error) {
	if err := s.check("rollback"); err != nil {
		return backends.ConfigItem{}, err
	}
	it, err := s.cc.Rollback(ctx, key, version)
	if err != nil {
		return it, err
	}
	s.update(func() bool { return s.put(it) })
	return it, nil
}

// History always asks the backend; the snapshot keeps no history.
func (s *Fallback) History(ctx context.Context, key string, limit int) ([]backends.ConfigItem, error) {
	if err := s.check("history"); err != nil {
		return nil, err
	}
	return s.cc.History(ctx, key, limit)
}

// WatchWith watches through the backend and records every event it passes
// on, so a long-lived watch keeps the snapshot current. The channel closes
// when ctx ends, when the backend's watch ends, or on Close.
func (s *Fallback) WatchWith(ctx context.Context, key string, opts backends.WatchOptions) (<-chan backends.ConfigEvent, error) {
	if err := s.check("watch"); err != nil {
		return nil, err
	}
	in, err := s.cc.WatchWith(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	out := make(chan backends.ConfigEvent)
	s.relays.Add(1)
	go func() {
		defer s.relays.Done()
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.life.Done():
				return
			case ev, ok := <-in:
				if !ok {
					return
				}
				switch ev.Type {
				case backends.ConfigPut:
					s.update(func() bool { return s.put(ev.Item) })
				case backends.ConfigDelete:
					s.update(func() bool { return s.remove(ev.Item.Key) })
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-s.life.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (s *Fallback) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return ctx, func() {}
}

// shouldFallback: the backend is unreachable, or did not answer before the
// deadline. A caller that cancelled gets its error, not stale data.
func (s *Fallback) shouldFallback(ctx, rctx context.Context, err error) bool {
	if errors.Is(err, backends.ErrUnavailable) {
		return true
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(rctx.Err(), context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled)
}

// update runs change under the lock and persists the snapshot if it changed.
func (s *Fallback) update(change func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !change() {
		return
	}
	if err := s.saveLocked(); err != nil {
		s.log.Warn("config snapshot: save failed", "path", s.path, "err", err)
	}
}

func (s *Fallback) put(it backends.ConfigItem) bool {
	if old, ok := s.items[it.Key]; ok && old == it {
		return false
	}
	s.items[it.Key] = it
	return true
}

func (s *Fallback) remove(key string) bool {
	if _, ok := s.items[key]; !ok {
		return false
	}
	delete(s.items, key)
	return true
}

func (s *Fallback) replacePrefix(prefix string, items []backends.ConfigItem) bool {
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
func (s *Fallback) covered(prefix string) bool {
	for p := range s.prefixes {
		if strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}
