package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/components"
	"github.com/baton-go/baton/internal/protoconv"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// ConfigClient is the typed facade of one config namespace served by a
// config actor: it implements backends.ConfigCenter by messaging the actor,
// with the same errors, ordering and cancellation behaviour as the direct
// backends. It is safe for concurrent use.
//
// Watches with FromVersion 0 share the actor's one backend watch per key or
// prefix; a watch with FromVersion > 0 gets a backend watch of its own
// (docs/actors.md). When the actor reports that a watch fell behind
// (subscriptionv1.Resync), the watch sends ConfigResync followed by the
// difference between what it had delivered (starting from the state read
// when the watch began) and a fresh read; a change already included in that
// read is not delivered again afterwards.
type ConfigClient struct {
	root *actor.RootContext
	pid  *actor.PID
	name string

	life      context.Context
	stop      context.CancelFunc
	closeOnce sync.Once
}

var _ backends.ConfigCenter = (*ConfigClient)(nil)

// newConfigClient returns a facade for config namespace name ("" = the
// actor's default namespace) served by the actor at pid.
func newConfigClient(root *actor.RootContext, pid *actor.PID, name string) *ConfigClient {
	life, stop := context.WithCancel(context.Background())
	return &ConfigClient{root: root, pid: pid, name: name, life: life, stop: stop}
}

// Name returns the name of the config namespace this facade serves.
func (c *ConfigClient) Name() string { return c.name }

// Close ends the watches opened through this client (their channels close);
// later calls return ErrClosed. It does not stop the actor. Idempotent.
func (c *ConfigClient) Close() error {
	c.closeOnce.Do(c.stop)
	return nil
}

func (c *ConfigClient) check(op string) error {
	if c.life.Err() != nil {
		return fmt.Errorf("config: %s: %w", op, backends.ErrClosed)
	}
	return nil
}

func (c *ConfigClient) checkKey(op, key string) error {
	if err := c.check(op); err != nil {
		return err
	}
	if err := backends.ValidateKey(key); err != nil {
		return fmt.Errorf("config: %s: %w", op, err)
	}
	return nil
}

func (c *ConfigClient) checkPrefix(op, prefix string) error {
	if err := c.check(op); err != nil {
		return err
	}
	if err := backends.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("config: %s: %w", op, err)
	}
	return nil
}

// Get returns the value of key, or ErrNotFound: GetItem without the
// version.
func (c *ConfigClient) Get(ctx context.Context, key string) (string, error) {
	it, err := c.GetItem(ctx, key)
	return it.Value, err
}

// GetItem implements backends.ConfigCenter.
func (c *ConfigClient) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	if err := c.checkKey("get", key); err != nil {
		return backends.ConfigItem{}, err
	}
	resp, err := actors.Request[*configv1.GetResponse](ctx, c.root, c.pid, &configv1.GetRequest{Name: c.name, Key: key})
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return protoconv.ConfigItemFromProto(resp.GetItem()), nil
}

// Set implements backends.ConfigCenter.
func (c *ConfigClient) Set(ctx context.Context, key, value string) error {
	if err := c.checkKey("set", key); err != nil {
		return err
	}
	_, err := actors.Request[*configv1.SetResponse](ctx, c.root, c.pid, &configv1.SetRequest{Name: c.name, Key: key, Value: value})
	return err
}

// CompareAndSet implements backends.ConfigCenter.
func (c *ConfigClient) CompareAndSet(ctx context.Context, key, value string, expected uint64) (backends.ConfigItem, error) {
	if err := c.checkKey("compare-and-set", key); err != nil {
		return backends.ConfigItem{}, err
	}
	resp, err := actors.Request[*configv1.SetResponse](ctx, c.root, c.pid,
		&configv1.SetRequest{Name: c.name, Key: key, Value: value, ExpectedVersion: &expected})
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return protoconv.ConfigItemFromProto(resp.GetItem()), nil
}

// Delete implements backends.ConfigCenter.
func (c *ConfigClient) Delete(ctx context.Context, key string) error {
	if err := c.checkKey("delete", key); err != nil {
		return err
	}
	_, err := actors.Request[*configv1.DeleteResponse](ctx, c.root, c.pid, &configv1.DeleteRequest{Name: c.name, Key: key})
	return err
}

// List returns the values of every key starting with prefix ("" = all):
// ListItems as a key → value map.
func (c *ConfigClient) List(ctx context.Context, prefix string) (map[string]string, error) {
	items, err := c.ListItems(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return backends.ConfigValues(items), nil
}

// ListItems implements backends.ConfigCenter.
func (c *ConfigClient) ListItems(ctx context.Context, prefix string) ([]backends.ConfigItem, error) {
	if err := c.checkPrefix("list", prefix); err != nil {
		return nil, err
	}
	resp, err := actors.Request[*configv1.ListResponse](ctx, c.root, c.pid, &configv1.ListRequest{Name: c.name, Prefix: prefix})
	if err != nil {
		return nil, err
	}
	return protoconv.ConfigItemsFromProto(resp.GetItems()), nil
}

// History implements backends.ConfigCenter.
func (c *ConfigClient) History(ctx context.Context, key string, limit int) ([]backends.ConfigItem, error) {
	if err := c.checkKey("history", key); err != nil {
		return nil, err
	}
	n := uint32(0)
	if limit > 0 {
		n = uint32(min(uint64(limit), math.MaxUint32))
	}
	resp, err := actors.Request[*configv1.HistoryResponse](ctx, c.root, c.pid, &configv1.HistoryRequest{Name: c.name, Key: key, Limit: n})
	if err != nil {
		return nil, err
	}
	return protoconv.ConfigItemsFromProto(resp.GetItems()), nil
}

// Rollback implements backends.ConfigCenter.
func (c *ConfigClient) Rollback(ctx context.Context, key string, version uint64) (backends.ConfigItem, error) {
	if err := c.checkKey("rollback", key); err != nil {
		return backends.ConfigItem{}, err
	}
	resp, err := actors.Request[*configv1.RollbackResponse](ctx, c.root, c.pid, &configv1.RollbackRequest{Name: c.name, Key: key, Version: version})
	if err != nil {
		return backends.ConfigItem{}, err
	}
	return protoconv.ConfigItemFromProto(resp.GetItem()), nil
}

// Resolve returns the most specific value of key for a component instance
// (instance layer, then component, then system; see layered.Resolve in backends/layered) and
// the layer it came from. ErrNotFound when no layer has the key; instance
// may be empty.
func (c *ConfigClient) Resolve(ctx context.Context, component, instance, key string) (backends.ConfigItem, string, error) {
	if err := c.check("resolve"); err != nil {
		return backends.ConfigItem{}, "", err
	}
	// Validate here so that callers get the typed *InvalidArgumentError.
	if err := backends.ValidateName("component", component); err != nil {
		return backends.ConfigItem{}, "", err
	}
	if instance != "" {
		if err := backends.ValidateName("instance", instance); err != nil {
			return backends.ConfigItem{}, "", err
		}
	}
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, "", err
	}
	resp, err := actors.Request[*configv1.ResolveResponse](ctx, c.root, c.pid,
		&configv1.ResolveRequest{Name: c.name, Component: component, Instance: instance, Key: key})
	if err != nil {
		return backends.ConfigItem{}, "", err
	}
	return protoconv.ConfigItemFromProto(resp.GetItem()), protoconv.LayerFromProto(resp.GetLayer()), nil
}

// Watch sends every later change of key: WatchWith without options.
func (c *ConfigClient) Watch(ctx context.Context, key string) (<-chan backends.ConfigEvent, error) {
	return c.WatchWith(ctx, key, backends.WatchOptions{})
}

// configWatchBuffer is the capacity of a watch channel.
const configWatchBuffer = 64

// WatchWith implements backends.ConfigCenter. The channel closes when ctx
// ends, when the client is closed, or when the actor ends the subscription
// for good (its namespace closed).
func (c *ConfigClient) WatchWith(ctx context.Context, key string, opts backends.WatchOptions) (<-chan backends.ConfigEvent, error) {
	var err error
	if opts.Prefix {
		err = c.checkPrefix("watch", key)
	} else {
		err = c.checkKey("watch", key)
	}
	if err != nil {
		return nil, err
	}
	w := &configWatch{c: c, key: key, opts: opts, view: map[string]uint64{},
		out: make(chan backends.ConfigEvent, configWatchBuffer)}
	if opts.FromVersion == 0 {
		// What the watcher holds to begin with, for the difference after
		// a resync: the state just before the watch starts.
		items, err := w.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("config: watch %q: %w", key, err)
		}
		for _, it := range items {
			w.view[it.Key] = it.Version
			w.last = max(w.last, it.Version)
		}
	} else {
		w.last, w.knownFloor = opts.FromVersion, opts.FromVersion
		for k, v := range opts.Known {
			if w.matches(k) {
				w.view[k] = v
			}
		}
		if opts.Known != nil {
			w.knownFloor = 0 // Known is complete: anything else is new
		}
	}
	if err := openSubscription(ctx, c.life, c.root, c.pid, "config", w); err != nil {
		return nil, err
	}
	return w.out, nil
}

// configWatch turns a config actor subscription into backends.ConfigEvents.
// All of its state is owned by the subscriber actor.
type configWatch struct {
	c    *ConfigClient
	key  string
	opts backends.WatchOptions
	out  chan backends.ConfigEvent

	// view is what the watcher holds: key → version.
	view map[string]uint64
	// last is the highest version delivered or read.
	last uint64
	// knownFloor: keys at or below it count as held even when not in view
	// (a FromVersion watch without Known).
	knownFloor uint64
	// filtering is set after a resync or resume: from then on an event the
	// watcher already holds (by version) is stale and dropped.
	filtering bool
	// floor is the highest version of the last re-read: a put of a key the
	// watcher does not hold, at or below it, is stale.
	floor uint64
}

func (w *configWatch) matches(k string) bool {
	if w.opts.Prefix {
		return strings.HasPrefix(k, w.key)
	}
	return k == w.key
}

func (w *configWatch) subscribe(ctx context.Context, id string, sub *subscriptionv1.Subscriber, resume bool) error {
	req := &configv1.WatchRequest{Name: w.c.name, Key: w.key, Prefix: w.opts.Prefix, SubscriptionId: id, Subscriber: sub}
	switch {
	case resume:
		// Continue from what was delivered; events already held are
		// filtered by version.
		req.FromVersion, req.Known = w.last, w.known()
		w.filtering = true
	default:
		req.FromVersion, req.Known = w.opts.FromVersion, w.opts.Known
	}
	_, err := actors.Request[*configv1.WatchResponse](ctx, w.c.root, w.c.pid, req)
	return err
}

func (w *configWatch) known() map[string]uint64 {
	m := make(map[string]uint64, len(w.view))
	for k, v := range w.view {
		m[k] = v
	}
	return m
}

func (w *configWatch) close() { close(w.out) }

func (w *configWatch) handle(ctx context.Context, msg any) bool {
	switch m := msg.(type) {
	case *configv1.Event:
		ev := backends.ConfigEvent{Type: protoconv.ConfigEventTypeFromProto(m.GetType()), Item: protoconv.ConfigItemFromProto(m.GetItem())}
		if ev.Type == 0 || !w.apply(ev) {
			return true
		}
		return w.emit(ctx, ev)
	case *subscriptionv1.Resync:
		return w.resync(ctx)
	}
	return true
}

// apply records ev in the view and reports whether to deliver it.
func (w *configWatch) apply(ev backends.ConfigEvent) bool {
	k, ver := ev.Item.Key, ev.Item.Version
	v, had := w.view[k]
	switch ev.Type {
	case backends.ConfigPut:
		if w.filtering && ((had && ver <= v) || (!had && ver <= w.floor)) {
			return false
		}
		if !had || ver > v {
			w.view[k] = ver
		}
	case backends.ConfigDelete:
		if w.filtering && (!had || ver <= v) {
			return false
		}
		if had && ver > v {
			delete(w.view, k)
		}
	}
	w.last = max(w.last, ver)
	return true
}

func (w *configWatch) emit(ctx context.Context, ev backends.ConfigEvent) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// read returns the current items of the watched key or prefix.
func (w *configWatch) read(ctx context.Context) ([]backends.ConfigItem, error) {
	if w.opts.Prefix {
		return w.c.ListItems(ctx, w.key)
	}
	it, err := w.c.GetItem(ctx, w.key)
	switch {
	case errors.Is(err, backends.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []backends.ConfigItem{it}, nil
}

// resync re-reads the watched range after events were dropped and sends
// ConfigResync and the difference to what the watcher holds. It retries a
// failing read with backoff until ctx ends.
func (w *configWatch) resync(ctx context.Context) bool {
	var items []backends.ConfigItem
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		items, err = w.read(rctx)
		cancel()
		if err == nil {
			break
		}
		t := time.NewTimer(components.DefaultBackoff().Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	top := uint64(0)
	for _, it := range items {
		top = max(top, it.Version)
	}
	if !w.emit(ctx, backends.ConfigEvent{Type: backends.ConfigResync, Item: backends.ConfigItem{Key: w.key, Version: top}}) {
		return false
	}
	now := make(map[string]bool, len(items))
	for _, it := range items {
		now[it.Key] = true
		v, had := w.view[it.Key]
		if had && v == it.Version {
			continue
		}
		w.view[it.Key] = it.Version
		if !had && it.Version <= w.knownFloor {
			continue // held already, by the FromVersion rule
		}
		if !w.emit(ctx, backends.ConfigEvent{Type: backends.ConfigPut, Item: it}) {
			return false
		}
	}
	var gone []string
	for k := range w.view {
		if !now[k] {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	for _, k := range gone {
		delete(w.view, k)
		if !w.emit(ctx, backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: k, Version: top}}) {
			return false
		}
	}
	w.filtering = true
	w.floor = max(w.floor, top)
	w.last = max(w.last, top)
	return true
}
