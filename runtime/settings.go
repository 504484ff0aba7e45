package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/baton-go/baton/backends/layered"
	"github.com/baton-go/baton/internal/components"

	"github.com/baton-go/baton/backends"
)

// Settings are the component settings a running node reloads from the
// config center (namespace SettingsConfigName, "baton"). Each one is looked
// up in the system, component and instance layers — the most specific wins:
//
//	system/<setting>
//	component/<component>/<setting>
//	instance/<component>/<node id>/<setting>
//
// with these components and settings:
//
//	cache      default_ttl       duration, 0 or >= 1ms (Spec.Components.CacheDefaultTTL)
//	cache      max_batch         integer, 1..10000 (CacheMaxBatch)
//	lock       ttl               duration, >= 100ms (LockTTL)
//	discovery  registration_ttl  duration, > 0    (RegistrationTTL)
//
// A value that does not parse or is out of range is rejected: the previous
// value stays in force and the rejection is reported to the observer given
// with WithSettingsObserver. A setting deleted from every layer falls back to
// the Spec value.
type Settings struct {
	CacheDefaultTTL time.Duration
	CacheMaxBatch   int
	LockTTL         time.Duration
	RegistrationTTL time.Duration
}

// SettingsEvent reports one applied or rejected setting change.
type SettingsEvent struct {
	Component string // "cache", "lock", "discovery"
	Setting   string // e.g. "default_ttl"
	Layer     string // "system", "component", "instance", or "" for the Spec default
	Value     string
	// Err is nil when the value was applied, and an ErrInvalidArgument when
	// it was rejected (the old value stays).
	Err error
}

// WithSettingsObserver calls f (from one goroutine, in order) for every
// settings change the node applies or rejects.
func WithSettingsObserver(f func(SettingsEvent)) Option {
	return func(o *nodeOptions) { o.settingsObserver = f }
}

// settingsFrom returns the settings a node starts with: its Spec's
// component defaults. A setting deleted from every layer goes back to this.
func settingsFrom(c Spec) Settings {
	return Settings{
		CacheDefaultTTL: c.Components.CacheDefaultTTL, CacheMaxBatch: c.Components.CacheMaxBatch,
		LockTTL: c.Components.LockTTL, RegistrationTTL: c.Components.RegistrationTTL,
	}
}

// reloadable is one setting of the table below, whatever its type.
type reloadable interface {
	names() (component, setting string)
	// update sets the setting in next to the parsed raw value, or to its
	// value in defaults when found is false, and reports whether it
	// changed and the value it now has.
	update(next *Settings, defaults Settings, raw string, found bool) (changed bool, value string, err error)
}

// setting is a reloadable setting of type T: how its text parses and which
// field of Settings holds it.
type setting[T comparable] struct {
	component, name string
	parse           func(string) (T, error)
	field           func(*Settings) *T
}

func (s setting[T]) names() (string, string) { return s.component, s.name }

func (s setting[T]) update(next *Settings, defaults Settings, raw string, found bool) (bool, string, error) {
	v := *s.field(&defaults)
	if found {
		parsed, err := s.parse(raw)
		if err != nil {
			return false, raw, err
		}
		v = parsed
	}
	if f := s.field(next); *f != v {
		*f = v
		return true, fmt.Sprint(v), nil
	}
	return false, "", nil
}

func parseDuration(min time.Duration) func(string) (time.Duration, error) {
	return func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, errors.New("not a duration (e.g. 500ms, 30s)")
		}
		if d < min {
			return 0, fmt.Errorf("must be at least %s", min)
		}
		return d, nil
	}
}

// parseCacheTTL accepts 0 (no expiry) or a TTL of at least
// backends.MinCacheTTL.
func parseCacheTTL(v string) (time.Duration, error) {
	ttl, err := parseDuration(0)(v)
	if err != nil {
		return 0, err
	}
	if ttl > 0 && ttl < backends.MinCacheTTL {
		return 0, fmt.Errorf("must be 0 (no expiry) or at least %s", backends.MinCacheTTL)
	}
	return ttl, nil
}

func parseMaxBatch(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		return 0, errors.New("must be an integer between 1 and 10000")
	}
	return n, nil
}

// reloadables is the table documented on Settings.
var reloadables = []reloadable{
	setting[time.Duration]{backends.ComponentCache, "default_ttl", parseCacheTTL,
		func(s *Settings) *time.Duration { return &s.CacheDefaultTTL }},
	setting[int]{backends.ComponentCache, "max_batch", parseMaxBatch,
		func(s *Settings) *int { return &s.CacheMaxBatch }},
	setting[time.Duration]{backends.ComponentLock, "ttl", parseDuration(backends.MinLockTTL),
		func(s *Settings) *time.Duration { return &s.LockTTL }},
	setting[time.Duration]{backends.ComponentDiscovery, "registration_ttl", parseDuration(time.Millisecond),
		func(s *Settings) *time.Duration { return &s.RegistrationTTL }},
}

// apply sends the settings of every component in changed (all of them
// when all is set) to the component actors.
func (s Settings) apply(n *Node, changed map[string]bool, all bool) {
	root := n.system.Root
	if changed[backends.ComponentCache] || all {
		root.Send(n.cachePID, &components.CacheSettings{MaxBatch: s.CacheMaxBatch, DefaultTTL: s.CacheDefaultTTL, SetDefaultTTL: true})
	}
	if changed[backends.ComponentLock] || all {
		root.Send(n.lockPID, &components.LockSettings{DefaultTTL: s.LockTTL})
	}
	if changed[backends.ComponentDiscovery] || all {
		root.Send(n.discoveryPID, &components.DiscoverySettings{DefaultTTL: s.RegistrationTTL})
	}
}

// settingsReloader keeps the component actors in step with the settings
// stored in the config center.
type settingsReloader struct {
	n       *Node
	cc      *ConfigClient
	observe func(SettingsEvent)

	mu      sync.Mutex
	current Settings

	cancel context.CancelFunc
	done   chan struct{}
}

func (n *Node) startSettings(ctx context.Context) error {
	r := &settingsReloader{
		n: n, cc: newConfigClient(n.system.Root, n.configPID, SettingsConfigName),
		observe: n.opts.settingsObserver,
		current: settingsFrom(n.cfg),
	}
	n.closeOnStop("settings facade", r.cc)
	// Watch first, then read: a change between the two is not missed.
	life, cancel := context.WithCancel(context.Background())
	events, err := r.cc.WatchWith(life, "", backends.WatchOptions{Prefix: true})
	if err != nil {
		cancel()
		return fmt.Errorf("node: watch settings: %w", err)
	}
	r.cancel, r.done = cancel, make(chan struct{})
	n.settings = r
	n.onStop("settings reloader", func(context.Context) error {
		cancel()
		<-r.done
		return nil
	})
	r.reload(ctx, true)
	go func() {
		defer close(r.done)
		for range events {
			rctx, c := context.WithTimeout(life, n.cfg.Components.OpTimeout)
			r.reload(rctx, false)
			c()
		}
	}()
	return nil
}

// reload resolves every setting and applies the ones that changed.
func (r *settingsReloader) reload(ctx context.Context, initial bool) {
	r.mu.Lock()
	next := r.current
	r.mu.Unlock()
	defaults := settingsFrom(r.n.cfg)
	changed := map[string]bool{}
	for _, st := range reloadables {
		component, name := st.names()
		item, layer, err := layered.Resolve(ctx, r.cc, component, r.n.cfg.NodeID, name)
		found := err == nil
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			r.n.log.Warn("baton: reading settings", "component", component, "setting", name, "err", err)
			continue
		}
		if !found {
			layer = ""
		}
		moved, value, err := st.update(&next, defaults, item.Value, found)
		if err != nil {
			r.report(SettingsEvent{Component: component, Setting: name, Layer: layer, Value: value,
				Err: backends.Invalid(component+"."+name, value, err.Error())})
			continue
		}
		if moved {
			changed[component] = true
			r.report(SettingsEvent{Component: component, Setting: name, Layer: layer, Value: value})
		}
	}
	if len(changed) == 0 && !initial {
		return
	}
	r.mu.Lock()
	r.current = next
	r.mu.Unlock()
	next.apply(r.n, changed, initial)
}

func (r *settingsReloader) report(ev SettingsEvent) {
	if ev.Err != nil {
		r.n.log.Warn("baton: rejected setting", "component", ev.Component, "setting", ev.Setting, "layer", ev.Layer, "value", ev.Value, "err", ev.Err)
	} else {
		r.n.log.Info("baton: setting applied", "component", ev.Component, "setting", ev.Setting, "layer", ev.Layer, "value", ev.Value)
	}
	if r.observe != nil {
		r.observe(ev)
	}
}

// Settings returns the component settings in force.
func (n *Node) Settings() Settings {
	n.mu.Lock()
	r := n.settings
	n.mu.Unlock()
	if r == nil {
		return Settings{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// SettingsKey returns the config-center key (in namespace
// SettingsConfigName) of a setting at a layer; instance is the node id and
// is used only by the instance layer.
func SettingsKey(layer, component, instance, setting string) string {
	return backends.LayerKey(layer, component, instance, setting)
}
