package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/layered"
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
//	cache      default_ttl       duration, 0 or >= 1ms (SystemConfig.Components.CacheDefaultTTL)
//	cache      max_batch         integer, 1..10000 (CacheMaxBatch)
//	lock       ttl               duration, >= 100ms (LockTTL)
//	discovery  registration_ttl  duration, > 0    (RegistrationTTL)
//
// A value that does not parse or is out of range is rejected: the previous
// value stays in force and the rejection is reported to the observer given
// with WithSettingsObserver. A setting deleted from every layer falls back to
// the SystemConfig value.
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
	Layer     string // "system", "component", "instance", or "" for the SystemConfig default
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

type settingSpec struct {
	component, name string
	parse           func(string) (any, error)
	get             func(*Settings) any
	set             func(*Settings, any)
	def             func(SystemConfig) any
}

func parseDuration(min time.Duration) func(string) (any, error) {
	return func(v string) (any, error) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, errors.New("not a duration (e.g. 500ms, 30s)")
		}
		if d < min {
			return nil, fmt.Errorf("must be at least %s", min)
		}
		return d, nil
	}
}

// parseCacheTTL accepts 0 (no expiry) or a TTL of at least
// backends.MinCacheTTL.
func parseCacheTTL(v string) (any, error) {
	d, err := parseDuration(0)(v)
	if err != nil {
		return nil, err
	}
	if ttl := d.(time.Duration); ttl > 0 && ttl < backends.MinCacheTTL {
		return nil, fmt.Errorf("must be 0 (no expiry) or at least %s", backends.MinCacheTTL)
	}
	return d, nil
}

var settingSpecs = []settingSpec{
	{backends.ComponentCache, "default_ttl", parseCacheTTL,
		func(s *Settings) any { return s.CacheDefaultTTL }, func(s *Settings, v any) { s.CacheDefaultTTL = v.(time.Duration) },
		func(c SystemConfig) any { return c.Components.CacheDefaultTTL }},
	{backends.ComponentCache, "max_batch", func(v string) (any, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return nil, errors.New("must be an integer between 1 and 10000")
		}
		return n, nil
	}, func(s *Settings) any { return s.CacheMaxBatch }, func(s *Settings, v any) { s.CacheMaxBatch = v.(int) },
		func(c SystemConfig) any { return c.Components.CacheMaxBatch }},
	{backends.ComponentLock, "ttl", parseDuration(backends.MinLockTTL),
		func(s *Settings) any { return s.LockTTL }, func(s *Settings, v any) { s.LockTTL = v.(time.Duration) },
		func(c SystemConfig) any { return c.Components.LockTTL }},
	{backends.ComponentDiscovery, "registration_ttl", parseDuration(time.Millisecond),
		func(s *Settings) any { return s.RegistrationTTL }, func(s *Settings, v any) { s.RegistrationTTL = v.(time.Duration) },
		func(c SystemConfig) any { return c.Components.RegistrationTTL }},
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
		n: n, cc: NewConfigClient(n.system.Root, n.configPID, SettingsConfigName),
		observe: n.opts.settingsObserver,
		current: Settings{
			CacheDefaultTTL: n.cfg.Components.CacheDefaultTTL, CacheMaxBatch: n.cfg.Components.CacheMaxBatch,
			LockTTL: n.cfg.Components.LockTTL, RegistrationTTL: n.cfg.Components.RegistrationTTL,
		},
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
	changed := map[string]bool{}
	for _, spec := range settingSpecs {
		item, layer, err := layered.Resolve(ctx, r.cc, spec.component, r.n.cfg.NodeID, spec.name)
		var v any
		switch {
		case errors.Is(err, backends.ErrNotFound):
			v, layer = spec.def(r.n.cfg), ""
		case err != nil:
			r.n.log.Warn("baton: reading settings", "component", spec.component, "setting", spec.name, "err", err)
			continue
		default:
			v, err = spec.parse(item.Value)
			if err != nil {
				r.report(SettingsEvent{Component: spec.component, Setting: spec.name, Layer: layer, Value: item.Value,
					Err: backends.Invalid(spec.component+"."+spec.name, item.Value, err.Error())})
				continue
			}
		}
		if v == spec.get(&next) {
			continue
		}
		spec.set(&next, v)
		changed[spec.component] = true
		r.report(SettingsEvent{Component: spec.component, Setting: spec.name, Layer: layer, Value: fmt.Sprint(v)})
	}
	if len(changed) == 0 && !initial {
		return
	}
	r.mu.Lock()
	r.current = next
	r.mu.Unlock()
	root := r.n.system.Root
	if changed[backends.ComponentCache] || initial {
		root.Send(r.n.cachePID, &actors.CacheSettings{MaxBatch: next.CacheMaxBatch, DefaultTTL: next.CacheDefaultTTL, SetDefaultTTL: true})
	}
	if changed[backends.ComponentLock] || initial {
		root.Send(r.n.lockPID, &actors.LockSettings{DefaultTTL: next.LockTTL})
	}
	if changed[backends.ComponentDiscovery] || initial {
		root.Send(r.n.discoveryPID, &actors.DiscoverySettings{DefaultTTL: next.RegistrationTTL})
	}
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
