package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// CacheActorConfig configures the cache actor.
type CacheActorConfig struct {
	// NewCache opens the backend cache of a given name; the actor calls it
	// once per name it is asked about and keeps the result.
	NewCache func(name string) (backends.Cache, error)
	// Backend is "redis" or "etcd", for the connector gate.
	Backend string
	// Supervisor is the connector supervisor; nil disables the gate.
	Supervisor *actor.PID
	// OpTimeout bounds one backend round trip. Default: 5s.
	OpTimeout time.Duration
	// MaxBatch caps the operations of one round trip. Default: 256.
	MaxBatch int
	// MaxInFlight is how many batches may be on the wire at once. While
	// that many are out, new requests queue and form the next batch.
	// Default: 4; 1 makes the actor strictly one round trip at a time.
	MaxInFlight int
	// DefaultTTL applies to Sets that give no TTL, when positive.
	// Default: 0 (no expiry). Hot-reloadable with CacheSettings.
	DefaultTTL time.Duration
	// Logger. Default: discard.
	Logger *slog.Logger
}

// CacheSettings changes the hot-reloadable settings of a running cache
// actor (sent by the runtime when the config center changes). Zero fields
// keep their value, except DefaultTTL, which is applied as given when
// SetDefaultTTL is true.
type CacheSettings struct {
	MaxBatch      int
	DefaultTTL    time.Duration
	SetDefaultTTL bool
	// Applied, if not nil, receives the settings in force after the change.
	Applied chan<- CacheSettings
}

// CacheActor serves cachev1 requests for any number of named caches.
//
// Auto-pipelining: Get, Set, Delete and Exists requests are not executed
// one by one. The actor queues them and, the first time it queues one,
// sends itself a flush message; because that message goes to the back of
// the mailbox, everything that arrived before it is drained into the same
// batch, which then costs one backend round trip (a Redis pipeline, an etcd
// transaction chunk) through backends.CacheBatcher. Under load, requests
// arriving during a round trip form the next batch, so batch size grows
// with concurrency and throughput does not fall to one request per round
// trip. Up to MaxInFlight batches are on the wire at once — a batch runs in
// a goroutine that answers its callers directly — so the actor itself never
// waits on the network. A caller's own requests stay in order (it waits for
// each answer); requests of different callers are concurrent, as they
// would be on separate connections.
type CacheActor struct {
	cfg      CacheActorConfig
	gate     *BackendGate
	caches   map[string]backends.Cache
	pending  []pendingCacheOp
	flushed  bool // a flush message is in the mailbox
	inFlight int  // batches on the wire
	work     chan func()
	workers  sync.WaitGroup
	stats    map[string]*cachev1.StatsResponse
}

// cacheBatchDone tells the actor a batch finished (its answers are sent).
type cacheBatchDone struct {
	name string
	ops  int
}

type pendingCacheOp struct {
	name   string
	op     backends.CacheOp
	sender *actor.PID
}

type cacheFlush struct{}

// NewCacheActorProps returns the props of a cache actor.
func NewCacheActorProps(cfg CacheActorConfig) *actor.Props {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &CacheActor{cfg: cfg, gate: NewBackendGate(cfg.Backend),
			caches: map[string]backends.Cache{}, stats: map[string]*cachev1.StatsResponse{}}
	})
}

// Receive implements actor.Actor.
func (a *CacheActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	if a.gate.Handle(ctx, msg) {
		return
	}
	switch m := msg.(type) {
	case *actor.Started:
		a.gate.Subscribe(ctx, a.cfg.Supervisor)
		a.startWorkers()
	case *actor.Stopping, *actor.Restarting:
		a.failPending(ctx, fmt.Errorf("cache actor stopping: %w", backends.ErrClosed))
		a.stopWorkers() // bounded by OpTimeout; their callers get answers
		a.inFlight = 0
	case *cacheFlush:
		a.flushed = false
		a.flush(ctx)
	case *cacheBatchDone:
		a.inFlight--
		st := a.stats[m.name]
		if st == nil {
			st = &cachev1.StatsResponse{}
			a.stats[m.name] = st
		}
		st.Batches++
		st.Ops += uint64(m.ops)
		st.MaxBatch = max(st.MaxBatch, uint64(m.ops))
		a.flush(ctx)
	case *cachev1.GetRequest:
		a.enqueue(ctx, m.GetName(), backends.CacheOp{Kind: backends.CacheOpGet, Key: m.GetKey()})
	case *cachev1.SetRequest:
		ttl := m.GetTtl().AsDuration()
		if m.GetTtl() == nil || ttl == 0 {
			ttl = a.cfg.DefaultTTL
		}
		a.enqueue(ctx, m.GetName(), backends.CacheOp{Kind: backends.CacheOpSet, Key: m.GetKey(), Value: m.GetValue(), TTL: ttl})
	case *cachev1.DeleteRequest:
		a.enqueue(ctx, m.GetName(), backends.CacheOp{Kind: backends.CacheOpDelete, Key: m.GetKey()})
	case *cachev1.ExistsRequest:
		a.enqueue(ctx, m.GetName(), backends.CacheOp{Kind: backends.CacheOpExists, Key: m.GetKey()})
	case *cachev1.ClearRequest:
		err := a.direct(m.GetName(), func(c context.Context, cache backends.Cache) error { return cache.Clear(c) })
		respond(ctx, &cachev1.ClearResponse{Status: statusv1.FromError(err)})
	case *cachev1.GetManyRequest:
		var values map[string][]byte
		err := a.direct(m.GetName(), func(c context.Context, cache backends.Cache) (err error) {
			values, err = cache.GetMany(c, m.GetKeys())
			return err
		})
		respond(ctx, &cachev1.GetManyResponse{Status: statusv1.FromError(err), Values: values})
	case *cachev1.SetManyRequest:
		items := make([]backends.CacheItem, 0, len(m.GetItems()))
		for _, it := range m.GetItems() {
			ttl := it.GetTtl().AsDuration()
			if it.GetTtl() == nil || ttl == 0 {
				ttl = a.cfg.DefaultTTL
			}
			items = append(items, backends.CacheItem{Key: it.GetKey(), Value: it.GetValue(), TTL: ttl})
		}
		err := a.direct(m.GetName(), func(c context.Context, cache backends.Cache) error { return cache.SetMany(c, items) })
		respond(ctx, &cachev1.SetManyResponse{Status: statusv1.FromError(err)})
	case *cachev1.StatsRequest:
		st := a.stats[m.GetName()]
		if st == nil {
			st = &cachev1.StatsResponse{}
		}
		respond(ctx, &cachev1.StatsResponse{Status: statusv1.OK(), Batches: st.Batches, Ops: st.Ops, MaxBatch: st.MaxBatch})
	case *CacheSettings:
		if m.MaxBatch > 0 {
			a.cfg.MaxBatch = m.MaxBatch
		}
		if m.SetDefaultTTL && m.DefaultTTL >= 0 {
			a.cfg.DefaultTTL = m.DefaultTTL
		}
		if m.Applied != nil {
			select {
			case m.Applied <- CacheSettings{MaxBatch: a.cfg.MaxBatch, DefaultTTL: a.cfg.DefaultTTL, SetDefaultTTL: true}:
			default:
			}
		}
	default:
		rejectUnknown(ctx, m)
	}
}

func (a *CacheActor) enqueue(ctx actor.Context, name string, op backends.CacheOp) {
	if err := a.gate.Err(); err != nil {
		a.answer(ctx, ctx.Sender(), name, op, backends.CacheResult{Err: err})
		return
	}
	a.pending = append(a.pending, pendingCacheOp{name: name, op: op, sender: ctx.Sender()})
	if len(a.pending) >= a.cfg.MaxBatch && a.inFlight < a.cfg.MaxInFlight {
		a.flush(ctx)
		return
	}
	if !a.flushed {
		a.flushed = true
		ctx.Send(ctx.Self(), &cacheFlush{})
	}
}

// flush sends what is queued, one batch per cache name (in first-seen
// order, preserving request order within a cache), while fewer than
// MaxInFlight batches are out. What does not fit waits for a batch to
// finish.
//
// A batch goes out at once when nothing is on the wire (a lone caller pays
// no extra latency); while batches are out, another one is only started
// once enough requests have queued to make it worth a round trip —
// otherwise they wait for the next batch to finish, and batches grow with
// load instead of splintering.
func (a *CacheActor) flush(ctx actor.Context) {
	for len(a.pending) > 0 && a.inFlight < a.cfg.MaxInFlight &&
		(a.inFlight == 0 || len(a.pending) >= a.minConcurrentBatch()) {
		name := a.pending[0].name
		var batch, rest []pendingCacheOp
		for _, p := range a.pending {
			if p.name == name && len(batch) < a.cfg.MaxBatch {
				batch = append(batch, p)
			} else {
				rest = append(rest, p)
			}
		}
		a.pending = rest
		a.runBatch(ctx, name, batch)
	}
}

// minConcurrentBatch is the queue length that justifies a batch while
// others are still out.
func (a *CacheActor) minConcurrentBatch() int { return max(1, min(16, a.cfg.MaxBatch/4)) }

func (a *CacheActor) runBatch(ctx actor.Context, name string, batch []pendingCacheOp) {
	cache, err := a.cache(name)
	if err != nil {
		for _, p := range batch {
			answerCacheOp(ctx.ActorSystem().Root, p.sender, p.name, p.op, backends.CacheResult{Err: err})
		}
		return
	}
	ops := make([]backends.CacheOp, len(batch))
	for i, p := range batch {
		ops[i] = p.op
	}
	a.inFlight++
	root, self, timeout := ctx.ActorSystem().Root, ctx.Self(), a.cfg.OpTimeout
	a.work <- func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var results []backends.CacheResult
		if b, ok := cache.(backends.CacheBatcher); ok {
			results = b.DoBatch(c, ops)
		} else {
			results = runOneByOne(c, cache, ops)
		}
		for i, p := range batch {
			var r backends.CacheResult
			if i < len(results) {
				r = results[i]
			} else {
				r.Err = fmt.Errorf("cache batch returned %d results for %d ops: %w", len(results), len(ops), statusv1.ErrInternal)
			}
			r.Err = actorOpError(r.Err)
			answerCacheOp(root, p.sender, p.name, p.op, r)
		}
		root.Send(self, &cacheBatchDone{name: name, ops: len(ops)})
	}
}

// startWorkers starts MaxInFlight long-lived batch workers. Long-lived,
// because a goroutine per batch would pay for growing its stack through
// the client's call chain every time.
func (a *CacheActor) startWorkers() {
	a.work = make(chan func(), a.cfg.MaxInFlight)
	for range a.cfg.MaxInFlight {
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			for job := range a.work {
				job()
			}
		}()
	}
}

func (a *CacheActor) stopWorkers() {
	if a.work != nil {
		close(a.work)
		a.workers.Wait()
		a.work = nil
	}
}

// runOneByOne is the fallback for a Cache without the batch capability.
func runOneByOne(ctx context.Context, cache backends.Cache, ops []backends.CacheOp) []backends.CacheResult {
	out := make([]backends.CacheResult, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case backends.CacheOpGet:
			v, err := cache.Get(ctx, op.Key)
			if errors.Is(err, backends.ErrNotFound) {
				err = nil
			} else if err == nil {
				out[i].Found = true
			}
			out[i].Value, out[i].Err = v, err
		case backends.CacheOpSet:
			out[i].Err = cache.Set(ctx, op.Key, op.Value, op.TTL)
		case backends.CacheOpDelete:
			out[i].Err = cache.Delete(ctx, op.Key)
		case backends.CacheOpExists:
			out[i].Found, out[i].Err = cache.Exists(ctx, op.Key)
		default:
			out[i].Err = backends.Invalid("op", int(op.Kind), "unknown cache operation")
		}
	}
	return out
}

func (a *CacheActor) answer(ctx actor.Context, to *actor.PID, name string, op backends.CacheOp, r backends.CacheResult) {
	answerCacheOp(ctx.ActorSystem().Root, to, name, op, r)
}

// cacheOpVerbs name the batched operations in error texts.
var cacheOpVerbs = map[backends.CacheOpKind]string{
	backends.CacheOpGet: "get", backends.CacheOpSet: "set",
	backends.CacheOpDelete: "delete", backends.CacheOpExists: "exists",
}

// answerCacheOp answers one batched operation; safe from any goroutine. A
// failure is reported as `cache "<name>": <verb> "<key>": <cause>`.
func answerCacheOp(root *actor.RootContext, to *actor.PID, name string, op backends.CacheOp, r backends.CacheResult) {
	if to == nil {
		return
	}
	kind := op.Kind
	if r.Err == nil && kind == backends.CacheOpGet && !r.Found {
		r.Err = backends.ErrNotFound
	}
	if r.Err != nil {
		r.Err = fmt.Errorf("cache %q: %s %q: %w", name, cacheOpVerbs[kind], op.Key, r.Err)
	}
	st := statusv1.FromError(r.Err)
	var resp any
	switch kind {
	case backends.CacheOpGet:
		resp = &cachev1.GetResponse{Status: st, Value: r.Value}
	case backends.CacheOpSet:
		resp = &cachev1.SetResponse{Status: st}
	case backends.CacheOpDelete:
		resp = &cachev1.DeleteResponse{Status: st}
	case backends.CacheOpExists:
		resp = &cachev1.ExistsResponse{Status: st, Exists: r.Found}
	default:
		resp = st
	}
	root.Send(to, resp)
}

func (a *CacheActor) failPending(ctx actor.Context, err error) {
	for _, p := range a.pending {
		a.answer(ctx, p.sender, p.name, p.op, backends.CacheResult{Err: err})
	}
	a.pending = nil
}

// direct runs a non-batched operation, bounded by OpTimeout.
func (a *CacheActor) direct(name string, f func(context.Context, backends.Cache) error) error {
	if err := a.gate.Err(); err != nil {
		return err
	}
	cache, err := a.cache(name)
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(context.Background(), a.cfg.OpTimeout)
	defer cancel()
	return actorOpError(f(c, cache))
}

func (a *CacheActor) cache(name string) (backends.Cache, error) {
	if c, ok := a.caches[name]; ok {
		return c, nil
	}
	if err := backends.ValidateName("cache name", name); err != nil {
		return nil, err
	}
	if a.cfg.NewCache == nil {
		return nil, fmt.Errorf("cache actor: no cache factory: %w", backends.ErrNotSupported)
	}
	c, err := a.cfg.NewCache(name)
	if err != nil {
		return nil, err
	}
	a.caches[name] = c
	return c, nil
}
