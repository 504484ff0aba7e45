package backends

import (
	"context"
	"io"
)

// ConfigItem is one versioned configuration value.
type ConfigItem struct {
	Key   string
	Value string
	// Version strictly increases with every write in a config namespace.
	// It is what CompareAndSet compares and what WatchOptions.FromVersion
	// resumes from.
	Version uint64
}

// ConfigValues maps the keys of items to their values: the plain key/value
// view of what ListItems answers.
func ConfigValues(items []ConfigItem) map[string]string {
	out := make(map[string]string, len(items))
	for _, it := range items {
		out[it.Key] = it.Value
	}
	return out
}

// ConfigCenter stores configuration in one environment's namespace
// (<root>/<env>/config/<name>/). Keys follow ValidateKey and may contain '/'.
type ConfigCenter interface {
	// GetItem returns the value with its version, or ErrNotFound.
	GetItem(ctx context.Context, key string) (ConfigItem, error)
	// Set writes value unconditionally.
	Set(ctx context.Context, key string, value string) error
	// Delete removes the key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// CompareAndSet writes value only if the key's current version equals
	// expected (0 = the key must not exist); ErrConflict otherwise. It
	// returns the new item.
	CompareAndSet(ctx context.Context, key, value string, expected uint64) (ConfigItem, error)
	// ListItems returns the items of every key starting with prefix
	// ("" = all), sorted by key.
	ListItems(ctx context.Context, prefix string) ([]ConfigItem, error)
	// WatchWith sends every change of a key or, with opts.Prefix, of every
	// key under it, until ctx ends (then the channel closes). With
	// opts.FromVersion > 0 it first sends every change with a version
	// above FromVersion, so a watcher that remembers the last version it
	// saw misses nothing across reconnects. When that history is gone it
	// sends a ConfigResync event followed by the exact difference
	// (Put/Delete) between what the watcher had and the current state,
	// computed from opts.Known when given.
	WatchWith(ctx context.Context, key string, opts WatchOptions) (<-chan ConfigEvent, error)
	// History returns up to limit earlier versions of key, newest first,
	// including the current one (limit <= 0 = all that are kept). A key
	// with no version kept — never set, or its history trimmed away — has
	// an empty history: an empty slice and no error. History lists
	// versions, it does not say whether the key exists (a deleted key
	// keeps its earlier values); GetItem does.
	History(ctx context.Context, key string, limit int) ([]ConfigItem, error)
	// Rollback sets key back to the value it had at version, as a new write
	// (with a new version). ErrNotFound when that version is not in History.
	Rollback(ctx context.Context, key string, version uint64) (ConfigItem, error)
	// Close ends every watch (their channels close); see Lifecycle in the
	// package documentation.
	io.Closer
}

// WatchOptions refines WatchWith.
type WatchOptions struct {
	// Prefix watches every key starting with the given key.
	Prefix bool
	// FromVersion resumes after this version (0 = only future changes).
	FromVersion uint64
	// Known is what the watcher already holds (key → version), used to
	// compute the exact difference after a gap. Optional.
	Known map[string]uint64
}

// ConfigEventType is the kind of a ConfigEvent.
type ConfigEventType int

// Config event kinds.
const (
	ConfigPut ConfigEventType = iota + 1
	ConfigDelete
	// ConfigResync: history was lost (compaction, trimmed log); the events
	// that follow are the difference to the current state.
	ConfigResync
)

func (t ConfigEventType) String() string {
	switch t {
	case ConfigPut:
		return "put"
	case ConfigDelete:
		return "delete"
	case ConfigResync:
		return "resync"
	}
	return "unknown"
}

// ConfigEvent is one change seen by a watch. For ConfigDelete, Item.Value is
// empty and Item.Version is the version of the delete.
type ConfigEvent struct {
	Type ConfigEventType
	Item ConfigItem
}

// ConfigOptions configures a ConfigCenter implementation.
type ConfigOptions struct {
	// Namespace scopes the keys (root + env). Env is required.
	Namespace Namespace
	// Name of the config namespace within the environment. Default: "default".
	Name string
	// MaxValueSize is the largest value accepted, in bytes.
	// Default: DefaultMaxValueSize (1 MiB).
	MaxValueSize int
	// HistoryLimit is how many versions of each key History keeps.
	// Default: 10.
	HistoryLimit int
}

// Validate checks the options and returns a copy with defaults applied.
func (o ConfigOptions) Validate() (ConfigOptions, error) {
	o.Namespace = o.Namespace.WithDefaults()
	if err := o.Namespace.Validate(); err != nil {
		return o, err
	}
	if o.Name == "" {
		o.Name = "default"
	}
	if err := ValidateName("config name", o.Name); err != nil {
		return o, err
	}
	if o.MaxValueSize < 0 {
		return o, Invalid("max value size", o.MaxValueSize, "must not be negative")
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.HistoryLimit < 0 {
		return o, Invalid("history limit", o.HistoryLimit, "must not be negative")
	}
	if o.HistoryLimit == 0 {
		o.HistoryLimit = 10
	}
	return o, nil
}

// Config layers, from least to most specific.
const (
	LayerSystem    = "system"
	LayerComponent = "component"
	LayerInstance  = "instance"
)

// LayerKey is where a layered setting lives in a ConfigCenter:
//
//	system:    "system/<key>"
//	component: "component/<component>/<key>"
//	instance:  "instance/<component>/<instance>/<key>"
func LayerKey(layer, component, instance, key string) string {
	switch layer {
	case LayerComponent:
		return "component/" + component + "/" + key
	case LayerInstance:
		return "instance/" + component + "/" + instance + "/" + key
	default:
		return "system/" + key
	}
}
