package redis

import (
	"context"
	_ "embed" // Lua scripts
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// Config center on Redis.
//
// Keys of config namespace N (P = <root>/<env>/config/N/, T = N with braces
// replaced; the hash tag {T} keeps the namespace in one Cluster slot):
//
//	P{T}:meta           HASH    epoch, version (the namespace's last version)
//	P{T}:values         HASH    key → value
//	P{T}:versions       HASH    key → version of its last write
//	P{T}:history:<key>  LIST    "<version>:<p|d>:<value>", newest first, capped at HistoryLimit
//	P{T}:log            STREAM  changes, entry ID "<version>-0", MAXLEN ~ 10000
//
// Every write is one Lua script, so value, version, history and log change
// together. Because the log's entry IDs are the versions and versions are
// contiguous (every version has exactly one entry), resuming a watch from a
// version is an XREAD from "<version>-0", and a gap is visible as a jump.
//
// Versions of a new namespace start at the server clock in microseconds
// (about 1.8e15) rather than at 1, and the meta hash records that start as
// the epoch. Redis without persistence comes back empty after a restart;
// the first write then starts a new epoch whose versions are above every
// version of the lost one (unless the server clock went backwards), so a
// watcher resuming from an old version finds it older than the log and
// resyncs instead of mistaking new versions for old ones.

//go:embed config_common.lua
var cfgCommonLua string

//go:embed config_set.lua
var cfgSetLua string

//go:embed config_delete.lua
var cfgDeleteLua string

//go:embed config_rollback.lua
var cfgRollbackLua string

//go:embed config_get.lua
var cfgGetLua string

//go:embed config_list.lua
var cfgListLua string

//go:embed config_probe.lua
var cfgProbeLua string

var (
	cfgSetScript      = logScript(cfgCommonLua, cfgSetLua)
	cfgDeleteScript   = logScript(cfgCommonLua, cfgDeleteLua)
	cfgRollbackScript = logScript(cfgCommonLua, cfgRollbackLua)
	cfgGetScript      = logScript(cfgCommonLua, cfgGetLua)
	cfgListScript     = logScript(cfgCommonLua, cfgListLua)
	cfgProbeScript    = logScript(cfgCommonLua, cfgProbeLua)
)

const (
	// cfgLogMaxLen caps the change log (approximately). A watcher resuming
	// from further back gets a ConfigResync and the difference instead.
	cfgLogMaxLen = 10000
	// cfgWatchBuffer is the capacity of a watch channel.
	cfgWatchBuffer = 64
)

// configStore is the ConfigCenter NewConfigCenter returns.
type configStore struct {
	conn   *Connector
	opts   backends.ConfigOptions
	logger *slog.Logger
	keys   cfgKeys

	ctx    context.Context // canceled by Close; parent of every watch
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

var _ backends.ConfigCenter = (*configStore)(nil)

type cfgKeys struct {
	meta, values, versions, log, historyPrefix string
}

// common are the keys every config script declares; write scripts add the
// history list of their key.
func (k cfgKeys) common() []string { return []string{k.meta, k.values, k.versions, k.log} }

func (k cfgKeys) withHistory(key string) []string {
	return []string{k.meta, k.values, k.versions, k.log, k.historyPrefix + key}
}

// NewConfigCenter returns a ConfigCenter for namespace opts.Name (default
// "default") that uses conn's client at call time, so it follows
// reconnects; see backends.ConfigOptions for the other defaults. Each watch
// holds one pooled connection while it waits in XREAD BLOCK (at most a
// second at a time). Every read goes to Redis; backends/snapshot adds a
// local fallback on top. Close stops its watches.
func NewConfigCenter(conn *Connector, opts backends.ConfigOptions) (backends.ConfigCenter, error) {
	s, err := newConfigStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newConfigStore is NewConfigCenter with the concrete type, for this package's tests.
func newConfigStore(conn *Connector, opts backends.ConfigOptions) (*configStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "nil", "must not be nil")
	}
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	base := opts.Namespace.Prefix(backends.ComponentConfig, opts.Name) + "{" + discHashTag(opts.Name) + "}"
	c := &configStore{
		conn:   conn,
		opts:   opts,
		logger: conn.Logger().With("component", "redis config", "name", opts.Name),
		keys: cfgKeys{
			meta:          base + ":meta",
			values:        base + ":values",
			versions:      base + ":versions",
			log:           base + ":log",
			historyPrefix: base + ":history:",
		},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

func (c *configStore) errClosed(op string) error {
	return fmt.Errorf("%s: config center %w", op, backends.ErrClosed)
}

// client returns the connector's client unless c is closed.
func (c *configStore) client(op string) (goredis.UniversalClient, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, c.errClosed(op)
	}
	cl, err := c.conn.client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return cl, nil
}

func (c *configStore) checkWrite(op, key, value string) error {
	if err := backends.ValidateKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateValue([]byte(value), c.opts.MaxValueSize); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// GetItem returns the value of key with its version, or ErrNotFound.
func (c *configStore) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	const op = "redis config: get"
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return backends.ConfigItem{}, err
	}
	vals, err := cfgGetScript.Run(ctx, cl, c.keys.common(), key).StringSlice()
	if err != nil {
		return backends.ConfigItem{}, mapErr(fmt.Sprintf("%s %q", op, key), err)
	}
	if len(vals) != 2 {
		return backends.ConfigItem{}, fmt.Errorf("%s: unexpected reply of %d values", op, len(vals))
	}
	v, err := cfgParseVersion(op, vals[1])
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return backends.ConfigItem{Key: key, Value: vals[0], Version: v}, nil
}

func cfgParseVersion(op, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: bad version %q", op, s)
	}
	return v, nil
}

// Set writes value under key with a new version.
func (c *configStore) Set(ctx context.Context, key, value string) error {
	_, err := c.set(ctx, "redis config: set", key, value, "any", 0)
	return err
}

// CompareAndSet writes value only if key's version is expected (0: key must
// not exist); ErrConflict otherwise. It returns the new item.
func (c *configStore) CompareAndSet(ctx context.Context, key, value string, expected uint64) (backends.ConfigItem, error) {
	return c.set(ctx, "redis config: compare and set", key, value, "cas", expected)
}

func (c *configStore) set(ctx context.Context, op, key, value, mode string, expected uint64) (backends.ConfigItem, error) {
	if err := c.checkWrite(op, key, value); err != nil {
		return backends.ConfigItem{}, err
	}
	cl, err := c.client(op)
	if err != nil {
		return backends.ConfigItem{}, err
	}
	vals, err := cfgSetScript.Run(ctx, cl, c.keys.withHistory(key),
		key, value, mode, strconv.FormatUint(expected, 10), c.opts.HistoryLimit, cfgLogMaxLen).StringSlice()
	if err != nil {
		return backends.ConfigItem{}, mapErr(op, err)
	}
	if len(vals) != 2 {
		return backends.ConfigItem{}, fmt.Errorf("%s: unexpected reply of %d values", op, len(vals))
	}
	if vals[0] == "conflict" {
		return backends.ConfigItem{}, fmt.Errorf("%s: key %q is at version %s, not %d: %w", op, key, vals[1], expected, backends.ErrConflict)
	}
	v, err := cfgParseVersion(op, vals[1])
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return backends.ConfigItem{Key: key, Value: value, Version: v}, nil
}

// Delete removes key with a new version (watchers see a ConfigDelete).
// Deleting a missing key does nothing and is not an error. The key's
// history is kept, so Rollback can bring it back.
func (c *configStore) Delete(ctx context.Context, key string) error {
	const op = "redis config: delete"
	if err := backends.ValidateKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return err
	}
	err = cfgDeleteScript.Run(ctx, cl, c.keys.withHistory(key), key, c.opts.HistoryLimit, cfgLogMaxLen).Err()
	return mapErr(op, err)
}

// ListItems returns every key starting with prefix with its value and
// version, sorted by key, read atomically.
func (c *configStore) ListItems(ctx context.Context, prefix string) ([]backends.ConfigItem, error) {
	const op = "redis config: list"
	if err := backends.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return nil, err
	}
	snap, err := c.list(ctx, cl, op, prefix, false)
	if err != nil {
		return nil, err
	}
	return snap.items, nil
}

// cfgList is the namespace at one version.
type cfgList struct {
	epoch   string
	version uint64
	items   []backends.ConfigItem // sorted by key
}

// list reads the items under prefix and the namespace position in one
// script. With start, a missing epoch is created (watches need one).
func (c *configStore) list(ctx context.Context, cl goredis.Scripter, op, prefix string, start bool) (cfgList, error) {
	flag := "0"
	if start {
		flag = "1"
	}
	vals, err := cfgListScript.Run(ctx, cl, c.keys.common(), prefix, flag).StringSlice()
	if err != nil {
		return cfgList{}, mapErr(op, err)
	}
	return c.decodeList(op, vals)
}

// decodeList reads the list script's reply: epoch, namespace version, then
// key, value, version per item. An item whose version or key is not one
// the scripts write is logged and skipped, as History skips undecodable
// records: one damaged entry must not fail every list and every watch
// resync of the namespace. A reply of another shape, or a namespace
// version that is not a number, is an error.
func (c *configStore) decodeList(op string, vals []string) (cfgList, error) {
	if len(vals) < 2 || (len(vals)-2)%3 != 0 {
		return cfgList{}, fmt.Errorf("%s: unexpected reply of %d values", op, len(vals))
	}
	out := cfgList{epoch: vals[0]}
	if vals[1] != "" {
		var err error
		if out.version, err = cfgParseVersion(op, vals[1]); err != nil {
			return cfgList{}, err
		}
	}
	out.items = make([]backends.ConfigItem, 0, (len(vals)-2)/3)
	for i := 2; i < len(vals); i += 3 {
		v, err := cfgParseVersion(op, vals[i+2])
		if err != nil || backends.ValidateKey(vals[i]) != nil {
			c.logger.Warn("skipping undecodable item", "key", vals[i], "version", vals[i+2])
			continue
		}
		out.items = append(out.items, backends.ConfigItem{Key: vals[i], Value: vals[i+1], Version: v})
	}
	slices.SortFunc(out.items, func(a, b backends.ConfigItem) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// History returns up to limit kept values of key, newest first, the current
// one included (limit <= 0: all kept, at most HistoryLimit). Deletions are
// recorded but not listed. A key without history gives an empty slice.
func (c *configStore) History(ctx context.Context, key string, limit int) ([]backends.ConfigItem, error) {
	const op = "redis config: history"
	if err := backends.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return nil, err
	}
	entries, err := cl.LRange(ctx, c.keys.historyPrefix+key, 0, -1).Result()
	if err != nil {
		return nil, mapErr(op, err)
	}
	out := make([]backends.ConfigItem, 0, len(entries))
	for _, e := range entries {
		ver, kind, value, ok := cfgParseHistory(e)
		if !ok {
			c.logger.Warn("skipping undecodable history entry", "key", key)
			continue
		}
		if kind != "p" {
			continue
		}
		out = append(out, backends.ConfigItem{Key: key, Value: value, Version: ver})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// cfgParseHistory splits "<version>:<p|d>:<value>".
func cfgParseHistory(e string) (version uint64, kind, value string, ok bool) {
	vs, rest, ok1 := strings.Cut(e, ":")
	kind, value, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, "", "", false
	}
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return 0, "", "", false
	}
	return v, kind, value, true
}

// Rollback writes the value key had at version again, as a new version
// (also after the key was deleted). ErrNotFound when that version is not
// among the values History keeps.
func (c *configStore) Rollback(ctx context.Context, key string, version uint64) (backends.ConfigItem, error) {
	const op = "redis config: rollback"
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return backends.ConfigItem{}, err
	}
	vals, err := cfgRollbackScript.Run(ctx, cl, c.keys.withHistory(key),
		key, strconv.FormatUint(version, 10), c.opts.HistoryLimit, cfgLogMaxLen).StringSlice()
	if err != nil {
		return backends.ConfigItem{}, mapErr(op, err)
	}
	if len(vals) == 1 && vals[0] == "notfound" {
		return backends.ConfigItem{}, fmt.Errorf("%s: key %q has no kept version %d: %w", op, key, version, backends.ErrNotFound)
	}
	if len(vals) != 3 {
		return backends.ConfigItem{}, fmt.Errorf("%s: unexpected reply of %d values", op, len(vals))
	}
	v, err := cfgParseVersion(op, vals[1])
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return backends.ConfigItem{Key: key, Value: vals[2], Version: v}, nil
}

// WatchWith watches key, or with opts.Prefix every key starting with it
// ("" = the whole namespace), until ctx ends or Close (the channel is then
// closed).
//
// With FromVersion 0 it starts at the current version, fixed before
// WatchWith returns (opts.Known is not used). With FromVersion > 0 it first
// replays every change above FromVersion from the log. When that is not
// possible — the log was trimmed past FromVersion, or the server lost its
// data — it sends ConfigResync followed by the difference to the current
// state: Put for keys that are new or at another version than in
// opts.Known, Delete (with the current namespace version) for keys in Known
// that are gone. Without Known, keys at a version <= FromVersion are taken
// as already known, and deletions during the gap cannot be reported.
//
// A running watch never loses an event: it resumes from the last version it
// delivered after errors and reconnects (retrying with backoff while Redis
// is unreachable), and detects trimmed logs and empty restarts the same way,
// answering with ConfigResync and the difference to what it has delivered.
func (c *configStore) WatchWith(ctx context.Context, key string, opts backends.WatchOptions) (<-chan backends.ConfigEvent, error) {
	const op = "redis config: watch"
	if opts.Prefix {
		if err := backends.ValidatePrefix(key); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	} else if err := backends.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.client(op)
	if err != nil {
		return nil, err
	}
	w := &cfgWatch{
		c:         c,
		key:       key,
		prefix:    opts.Prefix,
		ch:        make(chan backends.ConfigEvent, cfgWatchBuffer),
		logCursor: logCursor{stream: c.keys.log},
		view:      make(map[string]uint64),
	}
	probe := false
	if opts.FromVersion == 0 {
		snap, err := c.list(ctx, cl, op, key, true)
		if err != nil {
			return nil, err
		}
		w.epoch, w.last, w.complete = snap.epoch, snap.version, true
		for _, it := range snap.items {
			if w.matches(it.Key) {
				w.view[it.Key] = it.Version
			}
		}
	} else {
		w.last, w.base, probe = opts.FromVersion, opts.FromVersion, true
		// Reach the server now so that an unreachable backend is reported
		// to the caller; the goroutine probes again and decides between
		// replay and resync.
		if _, err := probeLog(ctx, cl, w); err != nil {
			return nil, mapErr(op, err)
		}
		if opts.Known != nil {
			w.complete = true
			for k, v := range opts.Known {
				if w.matches(k) {
					w.view[k] = v
				}
			}
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		stop()
		cancel()
		return nil, c.errClosed(op)
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(w.ch)
		defer cancel()
		defer stop()
		w.run(wctx, probe)
	}()
	return w.ch, nil
}

// Close stops every watch (their channels close). It does not disconnect
// the connector. Close is idempotent; other calls afterwards return
// ErrClosed.
func (c *configStore) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// cfgWatch is the state of one watch goroutine.
type cfgWatch struct {
	c      *configStore
	key    string
	prefix bool
	ch     chan backends.ConfigEvent

	// The epoch is "" until known (a watch resuming from a caller's
	// version); sequences are versions.
	logCursor
	// view is key → version of what the watcher holds, for the difference
	// after a gap. complete is false while it is only partly known (resumed
	// without Known): keys at a version <= base then count as known.
	view     map[string]uint64
	complete bool
	base     uint64
}

func (w *cfgWatch) matches(k string) bool {
	if w.prefix {
		return strings.HasPrefix(k, w.key)
	}
	return k == w.key
}

func (w *cfgWatch) run(ctx context.Context, probe bool) {
	followLog(ctx, w.c.conn, w, probe, discDefaultRetryMin, discDefaultRetryMax, w.c.logger,
		"redis config: watch", "key", w.key, "prefix", w.prefix)
}

func (w *cfgWatch) cursor() *logCursor { return &w.logCursor }

func (w *cfgWatch) probeCmd(ctx context.Context, cl goredis.Scripter, last string) *goredis.Cmd {
	return cfgProbeScript.Run(ctx, cl, w.c.keys.common(), last)
}

// apply delivers one log entry if its key is watched. It returns false when
// ctx ended first. An entry the scripts do not write (a key that is not
// valid, a put without a value, an unknown type) is logged and skipped.
func (w *cfgWatch) apply(ctx context.Context, version uint64, values map[string]any) bool {
	k, _ := values["k"].(string)
	if backends.ValidateKey(k) != nil {
		w.c.logger.Warn("skipping log entry without a valid key", "type", values["t"])
		return true
	}
	if !w.matches(k) {
		return true
	}
	switch t, _ := values["t"].(string); t {
	case "p":
		v, ok := values["v"].(string)
		if !ok {
			break
		}
		w.view[k] = version
		return sendEvent(ctx, w.ch, backends.ConfigEvent{Type: backends.ConfigPut, Item: backends.ConfigItem{Key: k, Value: v, Version: version}})
	case "d":
		delete(w.view, k)
		return sendEvent(ctx, w.ch, backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: k, Version: version}})
	}
	w.c.logger.Warn("skipping undecodable log entry", "key", k, "type", values["t"])
	return true
}

// resync sends ConfigResync and the difference between the view and the
// current state, then continues from the current version.
func (w *cfgWatch) resync(ctx context.Context, cl goredis.UniversalClient) error {
	const op = "redis config: watch"
	snap, err := w.c.list(ctx, cl, op, w.key, true)
	if err != nil {
		return err
	}
	w.c.logger.Debug("watch resync", "key", w.key, "prefix", w.prefix, "from_epoch", w.epoch, "from", w.last, "to_epoch", snap.epoch, "to", snap.version)
	cur := make(map[string]backends.ConfigItem, len(snap.items))
	keys := make([]string, 0, len(snap.items)+len(w.view))
	for _, it := range snap.items {
		if w.matches(it.Key) {
			cur[it.Key] = it
			keys = append(keys, it.Key)
		}
	}
	for k := range w.view {
		if _, ok := cur[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	events := []backends.ConfigEvent{{Type: backends.ConfigResync, Item: backends.ConfigItem{Key: w.key, Version: snap.version}}}
	view := make(map[string]uint64, len(cur))
	for _, k := range keys {
		had, known := w.view[k]
		it, exists := cur[k]
		switch {
		case exists:
			view[k] = it.Version
			if known && had == it.Version {
				continue
			}
			if !known && !w.complete && it.Version <= w.base {
				continue
			}
			events = append(events, backends.ConfigEvent{Type: backends.ConfigPut, Item: it})
		case known:
			events = append(events, backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: k, Version: snap.version}})
		}
	}
	w.view, w.complete = view, true
	w.epoch, w.last = snap.epoch, snap.version
	for _, ev := range events {
		if !sendEvent(ctx, w.ch, ev) {
			return ctx.Err()
		}
	}
	return nil
}
