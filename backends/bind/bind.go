package bind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-go/baton/backends"
)

// Options configures New.
type Options[T any] struct {
	// Validate, if set, checks every decoded value before it is applied. A
	// value it rejects is never installed: New fails with it, and a later
	// update is dropped (the previous value stays) and reported to OnError.
	Validate func(T) error
	// OnChange, if set, is called after a new value has been installed, with
	// the previous and the new value. Calls come from the binding's watch
	// goroutine, one at a time, and must not block for long. It is not
	// called when a change leaves the decoded value as it was.
	OnChange func(old, updated T)
	// OnError, if set, receives updates that were rejected (decode or
	// validation failure; the error matches backends.ErrInvalidArgument) and watch
	// failures (the binding keeps retrying). Called like OnChange. When nil,
	// such errors are logged at warning level.
	OnError func(error)
	// Strict rejects keys that match no field of T (yaml KnownFields).
	// Default: false, unknown keys are ignored.
	Strict bool
	// Logger receives the binding's diagnostics. Default: discard.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// attempts to re-establish a watch that ended. Defaults: 100ms and 5s.
	RetryMin, RetryMax time.Duration
}

// Value keeps a typed value decoded from a configuration prefix up to date.
// Current is safe for concurrent use; the value it returns is shared and
// must be treated as read-only.
type Value[T any] struct {
	cc    backends.ConfigCenter
	base  string
	opts  Options[T]
	log   *slog.Logger
	cur   atomic.Pointer[snapshot[T]]
	state map[string]backends.ConfigItem // owned by the watch goroutine after New returns
	last  uint64                         // highest version seen; owned like state

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

type snapshot[T any] struct {
	value   T
	version uint64
}

// New decodes the configuration stored under prefix into a T (see the
// package documentation for the decoding rule), keeps it up to date and
// returns the binding. ctx bounds only the initial read and watch set-up;
// the binding then runs until Close.
//
// Every decoded value passes opts.Validate before it is installed. A burst
// of changes that arrives together is decoded once; the new value replaces
// the old one atomically and opts.OnChange sees both. A change that fails
// to decode or validate is dropped (the previous value stays) and reported
// to opts.OnError. New itself fails when the initial value does not decode
// or validate: the error matches backends.ErrInvalidArgument and the
// validator's error.
func New[T any](ctx context.Context, cc backends.ConfigCenter, prefix string, opts Options[T]) (*Value[T], error) {
	if cc == nil {
		return nil, backends.Invalid("config center", "<nil>", "must not be nil")
	}
	base := strings.TrimSuffix(prefix, "/")
	if base == "" {
		return nil, backends.Invalid("prefix", prefix, "must name a key prefix")
	}
	if err := backends.ValidateKey(base); err != nil {
		return nil, err
	}
	if opts.RetryMin < 0 || opts.RetryMax < 0 {
		return nil, backends.Invalid("retry", fmt.Sprintf("%v..%v", opts.RetryMin, opts.RetryMax), "must not be negative")
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = opts.RetryMin
	}
	b := &Value[T]{
		cc:    cc,
		base:  base,
		opts:  opts,
		log:   opts.Logger,
		state: make(map[string]backends.ConfigItem),
		done:  make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	items, err := cc.ListItems(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("config: bind %q: %w", base, err)
	}
	if len(items) == 0 {
		// Nothing under the prefix yet: take the namespace's newest version
		// as the watch start, from the same single read, so a write landing
		// between this read and the watch set-up is replayed, not missed.
		if items, err = cc.ListItems(ctx, ""); err != nil {
			return nil, fmt.Errorf("config: bind %q: %w", base, err)
		}
	}
	for _, it := range items {
		b.last = max(b.last, it.Version)
		if b.owns(it.Key) {
			b.state[it.Key] = it
		}
	}
	value, err := b.decodeAndValidate()
	if err != nil {
		return nil, err
	}
	b.cur.Store(&snapshot[T]{value: value, version: b.last})

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := cc.WatchWith(wctx, base, b.watchOptions())
	switch {
	case err == nil:
	case errors.Is(err, backends.ErrUnavailable):
		// The initial values came from a snapshot fallback while the backend
		// is down: serve them and keep trying to watch in the background.
		b.report(fmt.Errorf("config: bind %q: watch: %w", base, err))
		ch = nil
	default:
		cancel()
		return nil, fmt.Errorf("config: bind %q: watch: %w", base, err)
	}
	b.cancel = cancel
	go b.run(wctx, ch)
	return b, nil
}

// Current returns the value installed last. It never blocks.
func (b *Value[T]) Current() T { return b.cur.Load().value }

// Version returns the configuration version the current value was decoded
// from (the highest version seen when it was installed).
func (b *Value[T]) Version() uint64 { return b.cur.Load().version }

// Prefix returns the bound prefix, without a trailing '/'.
func (b *Value[T]) Prefix() string { return b.base }

// Close stops watching and waits for the watch goroutine to end; Current
// keeps returning the last value. Close is idempotent and always returns nil.
func (b *Value[T]) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		<-b.done
	})
	return nil
}

// owns reports whether key belongs to the binding: the document key or a
// key below base/.
func (b *Value[T]) owns(key string) bool {
	return key == b.base || strings.HasPrefix(key, b.base+"/")
}

func (b *Value[T]) watchOptions() backends.WatchOptions {
	known := make(map[string]uint64, len(b.state))
	for k, it := range b.state {
		known[k] = it.Version
	}
	return backends.WatchOptions{Prefix: true, FromVersion: b.last, Known: known}
}

func (b *Value[T]) run(ctx context.Context, ch <-chan backends.ConfigEvent) {
	defer close(b.done)
	if ch == nil {
		if ch = b.rewatch(ctx); ch == nil {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				if ch = b.rewatch(ctx); ch == nil {
					return
				}
				continue
			}
			changed := b.apply(ev)
			// Coalesce what is already queued (a resync burst, a batch of
			// writes) so intermediate states are neither validated nor
			// announced.
		drain:
			for range 4096 {
				select {
				case ev, ok = <-ch:
					if !ok {
						break drain // re-watched below, after the reload
					}
					changed = b.apply(ev) || changed
				default:
					break drain
				}
			}
			if changed {
				b.reload()
			}
			if !ok {
				if ch = b.rewatch(ctx); ch == nil {
					return
				}
			}
		}
	}
}

// apply folds one event into the state and reports whether a key of the
// binding changed. Events are applied in arrival order without comparing
// versions: the watch starts at the newest version of the initial read, so
// a replayed event is never older than the state it lands on, and after a
// backend that lost its data the versions may restart from below.
func (b *Value[T]) apply(ev backends.ConfigEvent) bool {
	b.last = max(b.last, ev.Item.Version)
	if !b.owns(ev.Item.Key) {
		return false
	}
	switch ev.Type {
	case backends.ConfigPut:
		old, had := b.state[ev.Item.Key]
		b.state[ev.Item.Key] = ev.Item
		return !had || old.Value != ev.Item.Value
	case backends.ConfigDelete:
		_, had := b.state[ev.Item.Key]
		delete(b.state, ev.Item.Key)
		return had
	}
	return false
}

func (b *Value[T]) reload() {
	value, err := b.decodeAndValidate()
	if err != nil {
		b.report(err)
		return
	}
	old := b.cur.Load()
	if reflect.DeepEqual(old.value, value) {
		b.cur.Store(&snapshot[T]{value: old.value, version: b.last})
		return
	}
	b.cur.Store(&snapshot[T]{value: value, version: b.last})
	if b.opts.OnChange != nil {
		b.opts.OnChange(old.value, value)
	}
}

func (b *Value[T]) decodeAndValidate() (T, error) {
	values := make(map[string]string, len(b.state))
	for k, it := range b.state {
		values[k] = it.Value
	}
	value, err := decode[T](b.base, values, b.opts.Strict)
	if err != nil {
		return value, fmt.Errorf("config: bind %q: decode: %w: %w", b.base, backends.ErrInvalidArgument, err)
	}
	if b.opts.Validate != nil {
		if err := b.opts.Validate(value); err != nil {
			return value, fmt.Errorf("config: bind %q: rejected by validation: %w: %w", b.base, backends.ErrInvalidArgument, err)
		}
	}
	return value, nil
}

// rewatch re-establishes a watch that ended, resuming after the last version
// seen with the current state as Known (so a gap is answered with the exact
// difference). It returns nil once ctx ends.
func (b *Value[T]) rewatch(ctx context.Context) <-chan backends.ConfigEvent {
	delay := b.opts.RetryMin
	for {
		if ctx.Err() != nil {
			return nil
		}
		ch, err := b.cc.WatchWith(ctx, b.base, b.watchOptions())
		if err == nil {
			return ch
		}
		if ctx.Err() != nil {
			return nil
		}
		b.report(fmt.Errorf("config: bind %q: watch: %w", b.base, err))
		// Full jitter over [delay/2, delay].
		wait := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, b.opts.RetryMax)
	}
}

func (b *Value[T]) report(err error) {
	if b.opts.OnError != nil {
		b.opts.OnError(err)
		return
	}
	b.log.Warn("config binding", "prefix", b.base, "err", err)
}
