package etcd

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// configHistoryComponent is the component segment of history records:
// <root>/<env>/config-history/<name>/. It sits beside "config", so no List
// or Watch of a config namespace can ever see a history record, and no
// config name can collide with it (names cannot contain '/').
const configHistoryComponent = "config-history"

// historyInlineMax is the largest value whose history record is written in
// the same transaction as the value itself. The record repeats the value,
// and etcd refuses requests above --max-request-bytes (1.5 MiB by default),
// so larger values get their record in a second request right after.
const historyInlineMax = 512 << 10

// historyHeader is the size of a history record's header: the version,
// big-endian uint64, where 0 means "the record's own mod revision" (records
// written in the value's transaction share its revision).
const historyHeader = 8

// configStore is the ConfigCenter NewConfigCenter returns.
type configStore struct {
	conn   *Connector
	opts   backends.ConfigOptions
	log    *slog.Logger
	prefix string // data keys
	hist   string // history records

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // watches

	mu     sync.Mutex
	closed bool
}

var _ backends.ConfigCenter = (*configStore)(nil)

// NewConfigCenter returns config namespace opts.Name (default "default") in
// opts.Namespace on conn. A key's version is its mod revision. History is
// kept in records of its own beside the namespace, so etcd's compaction does
// not remove it, and they outlive a Delete, so Rollback can undo one. Close
// ends its watches. The connector may still be unconnected; calls then fail
// with ErrUnavailable.
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
		return nil, backends.Invalid("connector", "<nil>", "must not be nil")
	}
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &configStore{
		conn:   conn,
		opts:   opts,
		log:    conn.Logger(),
		prefix: opts.Namespace.Prefix(backends.ComponentConfig, opts.Name),
		hist:   opts.Namespace.Prefix(configHistoryComponent, opts.Name),
		ctx:    ctx,
		cancel: cancel,
	}, nil
}

func (c *configStore) histPrefix(key string) string { return c.hist + key + "\x00" }

func (c *configStore) histKey(key string) string {
	return fmt.Sprintf("%s%016x", c.histPrefix(key), rand.Uint64())
}

func encodeRecord(version int64, value string) string {
	b := make([]byte, historyHeader+len(value))
	binary.BigEndian.PutUint64(b, uint64(version))
	copy(b[historyHeader:], value)
	return string(b)
}

func decodeRecord(kv *mvccpb.KeyValue) (version int64, value string, ok bool) {
	if len(kv.Value) < historyHeader {
		return 0, "", false
	}
	version = int64(binary.BigEndian.Uint64(kv.Value))
	if version == 0 {
		version = kv.ModRevision
	}
	return version, string(kv.Value[historyHeader:]), true
}

func (c *configStore) errClosed(op string) error {
	return fmt.Errorf("etcd: config %s: %w", op, backends.ErrClosed)
}

func (c *configStore) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// client returns the connector's client unless the center is closed.
func (c *configStore) client(op string) (*clientv3.Client, error) {
	if c.isClosed() {
		return nil, c.errClosed(op)
	}
	cli, err := c.conn.client()
	if err != nil {
		return nil, fmt.Errorf("etcd: config %s: %w", op, err)
	}
	return cli, nil
}

// GetItem returns the value of key with its version, or ErrNotFound.
func (c *configStore) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	const op = "etcd: config get"
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client("get")
	if err != nil {
		return backends.ConfigItem{}, err
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(octx, c.prefix+key)
	if err != nil {
		return backends.ConfigItem{}, mapCtxErr(ctx, op, err)
	}
	if len(resp.Kvs) == 0 {
		return backends.ConfigItem{}, fmt.Errorf("%s %q: %w", op, key, backends.ErrNotFound)
	}
	kv := resp.Kvs[0]
	return backends.ConfigItem{Key: key, Value: string(kv.Value), Version: uint64(kv.ModRevision)}, nil
}

// Set writes value unconditionally.
func (c *configStore) Set(ctx context.Context, key, value string) error {
	_, err := c.write(ctx, "set", key, value, nil)
	return err
}

// CompareAndSet writes value only if the key's version is expected (0: the
// key must not exist); ErrConflict otherwise. It returns the new item.
func (c *configStore) CompareAndSet(ctx context.Context, key, value string, expected uint64) (backends.ConfigItem, error) {
	var cmp clientv3.Cmp
	if expected == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(c.prefix+key), "=", 0)
	} else {
		cmp = clientv3.Compare(clientv3.ModRevision(c.prefix+key), "=", int64(expected))
	}
	return c.write(ctx, "compare-and-set", key, value, &cmp)
}

// write puts value (under cmp, when given) together with its history record.
func (c *configStore) write(ctx context.Context, opName, key, value string, cmp *clientv3.Cmp) (backends.ConfigItem, error) {
	op := "etcd: config " + opName
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateValue([]byte(value), c.opts.MaxValueSize); err != nil {
		return backends.ConfigItem{}, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client(opName)
	if err != nil {
		return backends.ConfigItem{}, err
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	dataKey := c.prefix + key
	inline := len(value) <= historyInlineMax
	ops := []clientv3.Op{clientv3.OpPut(dataKey, value)}
	if inline {
		ops = append(ops,
			clientv3.OpPut(c.histKey(key), encodeRecord(0, value)),
			clientv3.OpGet(c.histPrefix(key), clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	txn := cli.Txn(octx)
	if cmp != nil {
		// clientv3 wants If, Then, Else in this order.
		txn = txn.If(*cmp).Then(ops...).Else(clientv3.OpGet(dataKey, clientv3.WithKeysOnly()))
	} else {
		txn = txn.Then(ops...)
	}
	resp, err := txn.Commit()
	if err != nil {
		return backends.ConfigItem{}, mapCtxErr(ctx, op, err)
	}
	if !resp.Succeeded {
		var found int64
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			found = r.Kvs[0].ModRevision
		}
		return backends.ConfigItem{}, fmt.Errorf("%s %q: version is %d: %w", op, key, found, backends.ErrConflict)
	}
	version := resp.Header.Revision
	var records int64
	if inline {
		records = resp.Responses[2].GetResponseRange().GetCount()
	} else {
		// Not atomic with the value; History still shows the current
		// value if this record is missing.
		hresp, err := cli.Txn(octx).Then(
			clientv3.OpPut(c.histKey(key), encodeRecord(version, value)),
			clientv3.OpGet(c.histPrefix(key), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Commit()
		if err != nil {
			c.log.Warn("etcd config: history record not written", "key", key, "version", version, "error", err)
		} else {
			records = hresp.Responses[1].GetResponseRange().GetCount()
		}
	}
	if extra := records - int64(c.opts.HistoryLimit); extra > 0 {
		c.trim(octx, cli, key, extra)
	}
	return backends.ConfigItem{Key: key, Value: value, Version: uint64(version)}, nil
}

// trim deletes the n oldest history records of key, best-effort: a failure
// leaves a few records too many until the next write trims them.
func (c *configStore) trim(ctx context.Context, cli *clientv3.Client, key string, n int64) {
	resp, err := cli.Get(ctx, c.histPrefix(key), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend), clientv3.WithLimit(n))
	if err != nil {
		c.log.Debug("etcd config: history trim", "key", key, "error", err)
		return
	}
	for len(resp.Kvs) > 0 {
		chunk := resp.Kvs[:min(len(resp.Kvs), maxTxnOps)]
		resp.Kvs = resp.Kvs[len(chunk):]
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, kv := range chunk {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			c.log.Debug("etcd config: history trim", "key", key, "error", err)
			return
		}
	}
}

// Delete removes key; a missing key is not an error. Its history is kept.
func (c *configStore) Delete(ctx context.Context, key string) error {
	const op = "etcd: config delete"
	if err := backends.ValidateKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client("delete")
	if err != nil {
		return err
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	if _, err := cli.Delete(octx, c.prefix+key); err != nil {
		return mapCtxErr(ctx, op, err)
	}
	return nil
}

// ListItems is List with versions, sorted by key.
func (c *configStore) ListItems(ctx context.Context, prefix string) ([]backends.ConfigItem, error) {
	const op = "etcd: config list"
	if err := backends.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client("list")
	if err != nil {
		return nil, err
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(octx, c.prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	items := make([]backends.ConfigItem, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key, ok := c.itemKey(kv)
		if !ok {
			continue
		}
		items = append(items, backends.ConfigItem{Key: key, Value: string(kv.Value), Version: uint64(kv.ModRevision)})
	}
	return items, nil
}

// itemKey returns the config key of a stored kv, and false for a key no
// ConfigCenter call writes (the bare namespace prefix, a NUL byte, too
// long): written by someone else, it is skipped by lists and watches alike
// rather than handed out as a key that every other call refuses.
func (c *configStore) itemKey(kv *mvccpb.KeyValue) (string, bool) {
	key, ok := strings.CutPrefix(string(kv.Key), c.prefix)
	return key, ok && backends.ValidateKey(key) == nil
}

// History returns up to limit versions of key, newest first, including the
// current one (limit <= 0: all that are kept, at most HistoryLimit).
// Versions written before a Delete are still listed. ErrNotFound when
// nothing is kept for key.
func (c *configStore) History(ctx context.Context, key string, limit int) ([]backends.ConfigItem, error) {
	const op = "etcd: config history"
	if err := backends.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client("history")
	if err != nil {
		return nil, err
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	// One read-only transaction: the current value and the records agree.
	resp, err := cli.Txn(octx).Then(
		clientv3.OpGet(c.prefix+key),
		clientv3.OpGet(c.histPrefix(key), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	byVersion := make(map[int64]string)
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		if v, value, ok := decodeRecord(kv); ok {
			byVersion[v] = value
		}
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		byVersion[kvs[0].ModRevision] = string(kvs[0].Value)
	}
	items := make([]backends.ConfigItem, 0, len(byVersion)) // empty, not an error, when none is kept
	for v, value := range byVersion {
		items = append(items, backends.ConfigItem{Key: key, Value: value, Version: uint64(v)})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Version > items[j].Version })
	n := c.opts.HistoryLimit
	if limit > 0 && limit < n {
		n = limit
	}
	return items[:min(n, len(items))], nil
}

// Rollback writes the value key had at version as a new version.
// ErrNotFound when that version is not kept in History.
func (c *configStore) Rollback(ctx context.Context, key string, version uint64) (backends.ConfigItem, error) {
	const op = "etcd: config rollback"
	items, err := c.History(ctx, key, 0)
	if err != nil {
		return backends.ConfigItem{}, err
	}
	for _, it := range items {
		if it.Version == version {
			return c.write(ctx, "rollback", key, it.Value, nil)
		}
	}
	return backends.ConfigItem{}, fmt.Errorf("%s %q to version %d: %w", op, key, version, backends.ErrNotFound)
}

// WatchWith watches key or, with opts.Prefix, every key under it, until ctx
// ends or the center is closed (the channel is then closed). With
// opts.FromVersion > 0 it first sends every change after that version; when
// those are compacted it sends ConfigResync and the difference to opts.Known
// (keys absent from Known count as not held). The watched range is read
// before WatchWith returns, so an unreachable etcd is reported as
// ErrUnavailable.
func (c *configStore) WatchWith(ctx context.Context, key string, opts backends.WatchOptions) (<-chan backends.ConfigEvent, error) {
	const op = "etcd: config watch"
	var err error
	if opts.Prefix {
		err = backends.ValidatePrefix(key)
	} else {
		err = backends.ValidateKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.client("watch")
	if err != nil {
		return nil, err
	}
	start, end := c.prefix+key, ""
	if opts.Prefix {
		end = clientv3.GetPrefixRangeEnd(start)
	}
	getOpts := []clientv3.OpOption{clientv3.WithKeysOnly()}
	if end != "" {
		getOpts = append(getOpts, clientv3.WithRange(end))
	}
	octx, cancel := c.conn.opContext(ctx)
	resp, err := cli.Get(octx, start, getOpts...)
	cancel()
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	cw := &configWatch{c: c, key: key, view: make(map[string]int64)}
	rev := resp.Header.Revision
	w := &resumableWatch{
		conn:     c.conn,
		log:      c.log,
		key:      start,
		end:      end,
		next:     rev + 1,
		seen:     rev,
		cluster:  resp.Header.ClusterId,
		onEvents: cw.events,
		onResync: cw.resync,
	}
	if opts.FromVersion == 0 {
		for _, kv := range resp.Kvs {
			if key, ok := c.itemKey(kv); ok {
				cw.view[key] = kv.ModRevision
			}
		}
	} else {
		for k, v := range opts.Known {
			if k == key || (opts.Prefix && strings.HasPrefix(k, key)) {
				cw.view[k] = int64(v)
			}
		}
		// A server behind FromVersion lost data: the first stream then
		// sees its revision below seen and resyncs.
		w.next = int64(opts.FromVersion) + 1
		w.seen = max(rev, int64(opts.FromVersion))
	}
	out := make(chan backends.ConfigEvent, watchBuffer)
	cw.out = out
	wctx, cancelWatch := mergeDone(ctx, c.ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancelWatch()
		return nil, c.errClosed("watch")
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(out)
		defer cancelWatch()
		w.run(wctx)
	}()
	return out, nil
}

// configWatch is the state of one watch: the versions the watcher holds.
type configWatch struct {
	c    *configStore
	key  string
	view map[string]int64
	out  chan<- backends.ConfigEvent
}

func (s *configWatch) send(ctx context.Context, ev backends.ConfigEvent) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *configWatch) events(ctx context.Context, evs []*mvccpb.Event) error {
	for _, ev := range evs {
		key, ok := s.c.itemKey(ev.Kv)
		if !ok {
			continue
		}
		item := backends.ConfigItem{Key: key, Version: uint64(ev.Kv.ModRevision)}
		typ := backends.ConfigPut
		if ev.Type == mvccpb.Event_DELETE {
			typ = backends.ConfigDelete
			delete(s.view, key)
		} else {
			item.Value = string(ev.Kv.Value)
			s.view[key] = ev.Kv.ModRevision
		}
		if err := s.send(ctx, backends.ConfigEvent{Type: typ, Item: item}); err != nil {
			return err
		}
	}
	return nil
}

// resync sends ConfigResync (Item.Key: the watched key or prefix,
// Item.Version: the revision of the listing), then Put for every key whose
// version differs from the held one (in key order) and Delete for every held
// key that is gone (in key order, Version: the listing's revision).
func (s *configWatch) resync(ctx context.Context, kvs []*mvccpb.KeyValue, rev int64) error {
	if err := s.send(ctx, backends.ConfigEvent{Type: backends.ConfigResync, Item: backends.ConfigItem{Key: s.key, Version: uint64(rev)}}); err != nil {
		return err
	}
	now := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		key, ok := s.c.itemKey(kv)
		if !ok {
			continue
		}
		now[key] = kv.ModRevision
		if held, ok := s.view[key]; ok && held == kv.ModRevision {
			continue
		}
		it := backends.ConfigItem{Key: key, Value: string(kv.Value), Version: uint64(kv.ModRevision)}
		if err := s.send(ctx, backends.ConfigEvent{Type: backends.ConfigPut, Item: it}); err != nil {
			return err
		}
	}
	gone := make([]string, 0)
	for key := range s.view {
		if _, ok := now[key]; !ok {
			gone = append(gone, key)
		}
	}
	sort.Strings(gone)
	for _, key := range gone {
		it := backends.ConfigItem{Key: key, Version: uint64(rev)}
		if err := s.send(ctx, backends.ConfigEvent{Type: backends.ConfigDelete, Item: it}); err != nil {
			return err
		}
	}
	s.view = now
	return nil
}

// Close ends every watch (their channels close). Later calls return nil;
// other methods return ErrClosed.
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
