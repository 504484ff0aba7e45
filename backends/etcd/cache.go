package etcd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxTxnOps is etcd's default --max-txn-ops: DoBatch never puts more
// operations than this into one Txn.
const maxTxnOps = 128

// maxLeaseTTL is the longest lease etcd grants (its MaxLeaseTTL, seconds).
const maxLeaseTTL = 9_000_000_000 * time.Second

// Stored values carry a small header so that reads can hide entries whose
// deadline has passed before etcd's lease removes them:
//
//	byte 0     envMagic
//	byte 1     envVersion
//	bytes 2-9  deadline, Unix nanoseconds, big-endian (0 = no expiry)
//	bytes 10-  the value, verbatim
const (
	envMagic   = 0xBA
	envVersion = 1
	envHeader  = 10
)

func encodeEntry(value []byte, deadline int64) []byte {
	b := make([]byte, envHeader+len(value))
	b[0], b[1] = envMagic, envVersion
	binary.BigEndian.PutUint64(b[2:envHeader], uint64(deadline))
	copy(b[envHeader:], value)
	return b
}

// decodeEntry splits a stored value. Bytes written by someone else (no
// header) are returned as they are, without expiry.
func decodeEntry(raw []byte) (value []byte, deadline int64) {
	if len(raw) < envHeader || raw[0] != envMagic || raw[1] != envVersion {
		return raw, 0
	}
	return raw[envHeader:], int64(binary.BigEndian.Uint64(raw[2:envHeader]))
}

// cacheStore is the Cache NewCache returns.
type cacheStore struct {
	conn   *Connector
	opts   backends.CacheOptions
	prefix string
	now    func() time.Time
}

var (
	_ backends.Cache        = (*cacheStore)(nil)
	_ backends.CacheBatcher = (*cacheStore)(nil)
)

// NewCache returns the cache opts.Name in opts.Namespace on conn. It also
// implements backends.CacheBatcher; the package doc says how TTLs map to
// shared leases. It runs no goroutines. The connector may still be
// unconnected; calls then fail with ErrUnavailable.
func NewCache(conn *Connector, opts backends.CacheOptions) (backends.Cache, error) {
	s, err := newCacheStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newCacheStore is NewCache with the concrete type, for this package's tests.
func newCacheStore(conn *Connector, opts backends.CacheOptions) (*cacheStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "<nil>", "must not be nil")
	}
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	return &cacheStore{
		conn:   conn,
		opts:   opts,
		prefix: opts.Namespace.Prefix(backends.ComponentCache, opts.Name),
		now:    time.Now,
	}, nil
}

// Close does nothing and returns nil: the cache runs no background work and
// holds nothing of its own (the client is the connector's), so it stays
// usable. It is there so that every component closes the same way.
func (c *cacheStore) Close() error { return nil }

func (c *cacheStore) key(k string) string { return c.prefix + k }

// live decodes a stored entry and reports whether it is still visible.
func (c *cacheStore) live(raw []byte) ([]byte, bool) {
	v, deadline := decodeEntry(raw)
	if deadline != 0 && c.now().UnixNano() >= deadline {
		return nil, false
	}
	return v, true
}

func validTTL(ttl time.Duration) error {
	if err := backends.ValidateCacheTTL("ttl", ttl); err != nil {
		return err
	}
	if ttl > maxLeaseTTL {
		return backends.Invalid("ttl", ttl, "longer than etcd's maximum lease of 9e9 seconds")
	}
	return nil
}

// Get returns the value, or ErrNotFound when it is missing or past its
// deadline.
func (c *cacheStore) Get(ctx context.Context, key string) ([]byte, error) {
	const op = "etcd: cache get"
	v, ok, err := c.get(ctx, op, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", op, key, backends.ErrNotFound)
	}
	return v, nil
}

// Exists reports whether the key is present and not past its deadline. It
// reads the value because the deadline is stored with it.
func (c *cacheStore) Exists(ctx context.Context, key string) (bool, error) {
	_, ok, err := c.get(ctx, "etcd: cache exists", key)
	return ok, err
}

func (c *cacheStore) get(ctx context.Context, op, key string) ([]byte, bool, error) {
	if err := backends.ValidateKey(key); err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.conn.client()
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(octx, c.key(key))
	if err != nil {
		return nil, false, mapCtxErr(ctx, op, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	v, ok := c.live(resp.Kvs[0].Value)
	return v, ok, nil
}

// Set stores value; ttl 0 means no expiry.
func (c *cacheStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	o := backends.CacheOp{Kind: backends.CacheOpSet, Key: key, Value: value, TTL: ttl}
	if err := c.checkOp(o); err != nil {
		return fmt.Errorf("etcd: cache set: %w", err)
	}
	res := c.DoBatch(ctx, []backends.CacheOp{{Kind: backends.CacheOpSet, Key: key, Value: value, TTL: ttl}})
	return res[0].Err
}

// Delete removes the key; a missing key is not an error.
func (c *cacheStore) Delete(ctx context.Context, key string) error {
	const op = "etcd: cache delete"
	if err := backends.ValidateKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cli, err := c.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	if _, err := cli.Delete(octx, c.key(key)); err != nil {
		return mapCtxErr(ctx, op, err)
	}
	return nil
}

// Clear deletes every key under this cache's prefix in one request.
func (c *cacheStore) Clear(ctx context.Context) error {
	const op = "etcd: cache clear"
	cli, err := c.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	octx, cancel := c.conn.opContext(ctx)
	defer cancel()
	if _, err := cli.Delete(octx, c.prefix, clientv3.WithPrefix()); err != nil {
		return mapCtxErr(ctx, op, err)
	}
	return nil
}

// GetMany returns the live values of keys; missing keys are absent. Any
// invalid key fails the whole call before anything is read.
func (c *cacheStore) GetMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	const op = "etcd: cache get many"
	ops := make([]backends.CacheOp, len(keys))
	for i, k := range keys {
		if err := backends.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		ops[i] = backends.CacheOp{Kind: backends.CacheOpGet, Key: k}
	}
	out := make(map[string][]byte, len(keys))
	for i, r := range c.DoBatch(ctx, ops) {
		if r.Err != nil {
			return nil, r.Err
		}
		if r.Found {
			out[keys[i]] = r.Value
		}
	}
	return out, nil
}

// SetMany stores every item. Invalid items fail the whole call before
// anything is written; otherwise the first write error is returned.
func (c *cacheStore) SetMany(ctx context.Context, items []backends.CacheItem) error {
	const op = "etcd: cache set many"
	ops := make([]backends.CacheOp, len(items))
	for i, it := range items {
		o := backends.CacheOp{Kind: backends.CacheOpSet, Key: it.Key, Value: it.Value, TTL: it.TTL}
		if err := c.checkOp(o); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		ops[i] = o
	}
	var errs []error
	for _, r := range c.DoBatch(ctx, ops) {
		if r.Err != nil {
			errs = append(errs, r.Err)
			break
		}
	}
	return errors.Join(errs...)
}

func (c *cacheStore) checkOp(o backends.CacheOp) error {
	if err := backends.ValidateKey(o.Key); err != nil {
		return err
	}
	switch o.Kind {
	case backends.CacheOpGet, backends.CacheOpExists, backends.CacheOpDelete:
		return nil
	case backends.CacheOpSet:
		if err := backends.ValidateValue(o.Value, c.opts.MaxValueSize); err != nil {
			return err
		}
		return validTTL(o.TTL)
	}
	return backends.Invalid("op kind", int(o.Kind), "unknown cache operation")
}

// DoBatch runs ops in as few Txn round trips as etcd allows: chunks of at
// most 128 operations, cut early wherever a key already written in the
// current chunk comes up again (a Txn may not write a key twice, and cutting
// there keeps every operation seeing the ones before it). An invalid op
// fails alone; a transport failure fails the chunk it hit and every later
// one.
func (c *cacheStore) DoBatch(ctx context.Context, ops []backends.CacheOp) []backends.CacheResult {
	results := make([]backends.CacheResult, len(ops))
	cli, err := c.conn.client()
	if err != nil {
		for i := range results {
			results[i].Err = fmt.Errorf("etcd: cache batch: %w", err)
		}
		return results
	}
	valid := make([]int, 0, len(ops))
	for i, o := range ops {
		if err := c.checkOp(o); err != nil {
			results[i].Err = err // it names the field and the value
			continue
		}
		valid = append(valid, i)
	}
	var fatal error
	for _, chunk := range cacheChunks(ops, valid) {
		if fatal == nil {
			fatal = c.runChunk(ctx, cli, ops, chunk, results)
		}
		if fatal != nil {
			for _, i := range chunk {
				results[i] = backends.CacheResult{Err: fatal}
			}
		}
	}
	return results
}

// cacheChunks splits the positions idx of ops into Txn-sized chunks, in
// order: at most maxTxnOps each, and a new chunk wherever a key already
// written (set or deleted) in the current chunk comes up again.
func cacheChunks(ops []backends.CacheOp, idx []int) [][]int {
	var (
		chunks  [][]int
		cur     []int
		written = make(map[string]struct{})
	)
	for _, i := range idx {
		o := ops[i]
		if _, dup := written[o.Key]; dup || len(cur) == maxTxnOps {
			chunks = append(chunks, cur)
			cur = nil
			clear(written)
		}
		cur = append(cur, i)
		if o.Kind == backends.CacheOpSet || o.Kind == backends.CacheOpDelete {
			written[o.Key] = struct{}{}
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// runChunk commits one Txn for the ops at positions idx and fills their
// results. A non-nil error means the whole chunk failed (transport, ctx,
// lease grant); the caller then reports it on every op of this and every
// later chunk.
func (c *cacheStore) runChunk(ctx context.Context, cli *clientv3.Client, ops []backends.CacheOp, idx []int, results []backends.CacheResult) error {
	const op = "etcd: cache batch"
	for attempt := 0; ; attempt++ {
		var (
			txnOps []clientv3.Op
			inTxn  []int
			leases []clientv3.LeaseID
		)
		for _, i := range idx {
			o := ops[i]
			switch o.Kind {
			case backends.CacheOpGet, backends.CacheOpExists:
				txnOps = append(txnOps, clientv3.OpGet(c.key(o.Key)))
			case backends.CacheOpDelete:
				txnOps = append(txnOps, clientv3.OpDelete(c.key(o.Key)))
			case backends.CacheOpSet:
				var deadline int64
				var popts []clientv3.OpOption
				if o.TTL > 0 {
					dl := c.now().Add(o.TTL)
					deadline = dl.UnixNano()
					id, err := c.conn.leases.forDeadline(ctx, cli, dl, c.conn.opContext)
					if err != nil {
						// TTLs are validated, so a failed grant means etcd
						// is unreachable or ctx ended: the rest of the
						// chunk would fail the same way.
						return mapCtxErr(ctx, op+": grant lease", err)
					}
					leases = append(leases, id)
					popts = append(popts, clientv3.WithLease(id))
				}
				txnOps = append(txnOps, clientv3.OpPut(c.key(o.Key), string(encodeEntry(o.Value, deadline)), popts...))
			}
			inTxn = append(inTxn, i)
		}
		if len(txnOps) == 0 {
			return nil
		}
		octx, cancel := c.conn.opContext(ctx)
		resp, err := cli.Txn(octx).Then(txnOps...).Commit()
		cancel()
		if err != nil {
			if attempt == 0 && errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
				// A shared lease ended under us (revoked, data wiped,
				// expired late in its bucket): forget and regrant once.
				for _, id := range leases {
					c.conn.leases.forget(id)
				}
				for _, i := range idx {
					results[i] = backends.CacheResult{}
				}
				continue
			}
			return mapCtxErr(ctx, op, err)
		}
		for j, i := range inTxn {
			switch ops[i].Kind {
			case backends.CacheOpGet, backends.CacheOpExists:
				kvs := resp.Responses[j].GetResponseRange().GetKvs()
				if len(kvs) == 0 {
					continue
				}
				v, ok := c.live(kvs[0].Value)
				if !ok {
					continue
				}
				results[i].Found = true
				if ops[i].Kind == backends.CacheOpGet {
					results[i].Value = v
				}
			}
		}
		return nil
	}
}
