package redis

import (
	"context"
	_ "embed" // Lua scripts
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// Service discovery on Redis.
//
// Keys of service S (P = <root>/<env>/discovery/S/, T = S with braces
// replaced, so every key of S carries the hash tag {T} and lands in one
// Redis Cluster slot):
//
//	P{T}:instance:<id>  STRING  instance JSON, PX = its TTL
//	P{T}:index          ZSET    id → deadline (server clock, ms)
//	P{T}:log            STREAM  changes, entry IDs "<seq>-0", MAXLEN ~ 10000
//	P{T}:meta           HASH    epoch, seq (last seq in the log)
//
// Every write (register, keep-alive, deregister, expiry sweep) is one Lua
// script that changes the data, the index and the log together, so the log
// is a complete, ordered record of index membership. The sequence of a new
// log is seeded from the server clock (µs) and its epoch is that seed: when
// the server comes back empty, the meta hash is gone, the next script starts
// a new epoch, and watchers notice the epoch change and re-list.
//
// Keyspace notifications are not used: they are fire-and-forget and lost on
// every reconnect.

//go:embed discovery_common.lua
var discCommonLua string

//go:embed discovery_register.lua
var discRegisterLua string

//go:embed discovery_keepalive.lua
var discKeepAliveLua string

//go:embed discovery_deregister.lua
var discDeregisterLua string

//go:embed discovery_sweep.lua
var discSweepLua string

//go:embed discovery_snapshot.lua
var discSnapshotLua string

//go:embed discovery_probe.lua
var discProbeLua string

var (
	discRegisterScript   = logScript(discCommonLua, discRegisterLua)
	discKeepAliveScript  = logScript(discCommonLua, discKeepAliveLua)
	discDeregisterScript = logScript(discCommonLua, discDeregisterLua)
	discSweepScript      = logScript(discCommonLua, discSweepLua)
	discSnapshotScript   = logScript(discCommonLua, discSnapshotLua)
	discProbeScript      = logScript(discCommonLua, discProbeLua)
)

const (
	// discLogMaxLen caps each service's change log (approximately: MAXLEN ~).
	// A watcher further behind than this re-lists and gets the difference.
	discLogMaxLen = 10000
	// discSweepInterval is how often a Discovery removes expired instances of
	// the services it registers or watches.
	discSweepInterval = 500 * time.Millisecond
	// discWatchBlock bounds one XREAD BLOCK. go-redis does not interrupt a
	// blocked read when its context is canceled, so this is also how long a
	// watch may take to notice cancellation or Close.
	discWatchBlock = time.Second
	// discWatchBatch is the most log entries read per XREAD.
	discWatchBatch = 512
	// discWatchBuffer is the capacity of a watch channel. A watcher that does
	// not drain it stalls its own reads (the log keeps the events), never
	// anyone else's.
	discWatchBuffer = 64
	// discCloseTimeout bounds the best-effort deregistration in Close.
	discCloseTimeout = 2 * time.Second
	// discOpTimeout bounds one background call (sweep, watch probe) when the
	// caller's context has no deadline of its own.
	discOpTimeout = 3 * time.Second
	// discMinTTL is the smallest registration TTL accepted.
	discMinTTL = 10 * time.Millisecond

	discDefaultRetryMin = 100 * time.Millisecond
	discDefaultRetryMax = 5 * time.Second
)

// errDiscStopped tells a keep-alive loop that its registration was removed.
var errDiscStopped = errors.New("redis discovery: registration stopped")

// Discovery implements backends.ServiceDiscovery on Redis. Create it with
// NewDiscovery; it uses the connector's client at call time and so follows
// reconnects. Close stops keep-alives, watches and the expiry sweeper.
//
// Each Watch holds one pooled connection while it waits in XREAD BLOCK (at
// most one second at a time); size the connector's pool for the number of
// concurrent watches, or share watches (the actor layer runs one per service
// per node).
type Discovery struct {
	conn   *Connector
	opts   backends.DiscoveryOptions
	logger *slog.Logger

	ctx    context.Context // canceled by Close; parent of every background goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	regs     map[string]*discReg // by instance ID
	services map[string]int      // service name → registrations + watches using it (swept)

	// Registration events wait in cbQueue for the one dispatcher goroutine,
	// so OnRegistration is never called concurrently and a callback may call
	// Register or Deregister without deadlocking a keep-alive.
	cbMu    sync.Mutex
	cbQueue []backends.RegistrationEvent
	cbWake  chan struct{}
}

var _ backends.ServiceDiscovery = (*Discovery)(nil)

// discReg is one registration kept alive by this Discovery.
type discReg struct {
	id, name string // never change: readable without mu

	// mu serializes every server write of this registration (initial
	// register, updates, keep-alives, deregister), so a keep-alive can never
	// write stale data over a newer Register.
	mu      sync.Mutex
	svc     backends.ServiceInfo
	info    string // svc as JSON
	ttl     time.Duration
	stopped bool // deregistered or closed: no more writes

	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // Register changed the TTL: reschedule
	done   chan struct{} // closed when the keep-alive goroutine has ended
}

// discKeys are the keys of one service.
type discKeys struct {
	index, log, meta, dataPrefix string
}

// NewDiscovery returns a Discovery that uses conn's client. opts.Namespace
// needs an Env; RetryMin and RetryMax default to 100ms and 5s.
func NewDiscovery(conn *Connector, opts backends.DiscoveryOptions) (*Discovery, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "nil", "must not be nil")
	}
	opts.Namespace = opts.Namespace.WithDefaults()
	if err := opts.Namespace.Validate(); err != nil {
		return nil, err
	}
	if opts.RetryMin < 0 {
		return nil, backends.Invalid("retry min", opts.RetryMin, "must not be negative")
	}
	if opts.RetryMax < 0 {
		return nil, backends.Invalid("retry max", opts.RetryMax, "must not be negative")
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = discDefaultRetryMin
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = max(discDefaultRetryMax, opts.RetryMin)
	}
	if opts.RetryMin > opts.RetryMax {
		return nil, backends.Invalid("retry min", opts.RetryMin, "must not exceed retry max "+opts.RetryMax.String())
	}
	d := &Discovery{
		conn:     conn,
		opts:     opts,
		logger:   conn.Logger().With("component", "redis discovery"),
		regs:     make(map[string]*discReg),
		services: make(map[string]int),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.sweepLoop()
	if opts.OnRegistration != nil {
		d.cbWake = make(chan struct{}, 1)
		d.wg.Add(1)
		go d.dispatchLoop()
	}
	return d, nil
}

// discHashTag is the hash tag content for a name: braces would end the tag
// early, so they are replaced (a shared slot between two names is harmless).
func discHashTag(name string) string {
	return strings.NewReplacer("{", "(", "}", ")").Replace(name)
}

func (d *Discovery) keys(service string) discKeys {
	base := d.opts.Namespace.Prefix(backends.ComponentDiscovery, service) + "{" + discHashTag(service) + "}"
	return discKeys{
		index:      base + ":index",
		log:        base + ":log",
		meta:       base + ":meta",
		dataPrefix: base + ":instance:",
	}
}

// run evaluates a discovery script for one service. The data keys are built
// inside the script from the declared prefix; they share the hash tag.
func (k discKeys) run(ctx context.Context, cl goredis.Scripter, s *goredis.Script, args ...any) *goredis.Cmd {
	return s.Run(ctx, cl, []string{k.index, k.log, k.meta}, append([]any{k.dataPrefix, discLogMaxLen}, args...)...)
}

func (d *Discovery) errClosed(op string) error {
	return fmt.Errorf("%s: discovery %w", op, backends.ErrClosed)
}

func (d *Discovery) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// useService and releaseService keep the sweeper's list; callers hold d.mu.
func (d *Discovery) useService(name string) { d.services[name]++ }

func (d *Discovery) releaseService(name string) {
	if d.services[name] <= 1 {
		delete(d.services, name)
		return
	}
	d.services[name]--
}

// Register publishes svc and keeps it alive every ttl/3 until Deregister or
// Close. A registration found missing (server restarted empty, key deleted)
// or unreachable is reported as RegistrationLost and restored with jittered
// exponential backoff, forever, then reported as RegistrationRestored.
// Registering an ID again updates the instance (moving it to another service
// name removes it from the old one first). The write uses ctx and its
// failure is returned: a failed first Register keeps nothing, a failed
// update keeps the previous registration alive.
func (d *Discovery) Register(ctx context.Context, svc backends.ServiceInfo, ttl time.Duration) error {
	const op = "redis discovery: register"
	if err := svc.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateTTL("ttl", ttl); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if ttl == 0 {
		ttl = backends.DefaultRegistrationTTL
	}
	if ttl < discMinTTL {
		return fmt.Errorf("%s: %w", op, backends.Invalid("ttl", ttl, "must be at least "+discMinTTL.String()))
	}
	raw, err := json.Marshal(svc)
	if err != nil {
		return fmt.Errorf("%s: encode instance: %w", op, err)
	}
	info := string(raw)
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return d.errClosed(op)
		}
		r := d.regs[svc.ID]
		if r == nil {
			return d.registerNew(ctx, svc, info, ttl) // unlocks d.mu
		}
		d.mu.Unlock()

		r.mu.Lock()
		if r.stopped { // removed meanwhile: start over
			r.mu.Unlock()
			continue
		}
		if r.name != svc.Name {
			r.mu.Unlock()
			if err := d.Deregister(ctx, svc.ID); err != nil && !errors.Is(err, backends.ErrNotFound) {
				return fmt.Errorf("%s: move %q from service %q: %w", op, svc.ID, r.name, err)
			}
			continue
		}
		err := d.write(ctx, op, discRegisterScript, svc.Name, svc.ID, info, ttl)
		if err == nil {
			r.svc, r.info, r.ttl = svc, info, ttl
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
		return err
	}
}

// registerNew is called with d.mu held and releases it.
func (d *Discovery) registerNew(ctx context.Context, svc backends.ServiceInfo, info string, ttl time.Duration) error {
	const op = "redis discovery: register"
	r := &discReg{
		id:   svc.ID,
		name: svc.Name,
		svc:  svc,
		info: info,
		ttl:  ttl,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(d.ctx)
	// Locked before it becomes visible, so concurrent callers for this ID
	// wait for the first write.
	r.mu.Lock()
	d.regs[svc.ID] = r
	d.useService(svc.Name)
	d.wg.Add(1) // for the keep-alive goroutine; added under d.mu so Close's Wait sees it
	d.mu.Unlock()

	if err := d.write(ctx, op, discRegisterScript, svc.Name, svc.ID, info, ttl); err != nil {
		r.stopped = true
		r.mu.Unlock()
		d.mu.Lock()
		if d.regs[svc.ID] == r {
			delete(d.regs, svc.ID)
			d.releaseService(svc.Name)
		}
		d.mu.Unlock()
		r.cancel()
		close(r.done)
		d.wg.Done()
		return err
	}
	go d.keepAlive(r, ttl)
	r.mu.Unlock()
	return nil
}

// write runs a register-style script (id, info, ttl) with the caller's ctx.
func (d *Discovery) write(ctx context.Context, op string, s *goredis.Script, service, id, info string, ttl time.Duration) error {
	cl, err := d.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = d.keys(service).run(ctx, cl, s, id, info, ttl.Milliseconds()).Err()
	return mapErr(op, err)
}

func discKeepAliveInterval(ttl time.Duration) time.Duration {
	return max(ttl/3, time.Millisecond)
}

// discCallTimeout bounds one keep-alive: long enough for a slow server,
// short enough to retry well before the TTL runs out.
func discCallTimeout(ttl time.Duration) time.Duration {
	return min(max(ttl/3, 500*time.Millisecond), 5*time.Second)
}

// keepAlive refreshes r every ttl/3 and restores it when it was lost.
func (d *Discovery) keepAlive(r *discReg, ttl time.Duration) {
	defer d.wg.Done()
	defer close(r.done)
	lost := false
	attempt := 0
	timer := time.NewTimer(discKeepAliveInterval(ttl))
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
			if !lost {
				r.mu.Lock()
				ttl = r.ttl
				r.mu.Unlock()
				timer.Reset(discKeepAliveInterval(ttl))
			}
			continue
		case <-timer.C:
		}
		alive, newTTL, err := d.refresh(r)
		switch {
		case errors.Is(err, errDiscStopped) || r.ctx.Err() != nil:
			return
		case err != nil:
			if !lost {
				lost = true
				d.report(r, backends.RegistrationLost, err)
			}
			d.logger.Debug("keep-alive failed", "service", r.name, "id", r.id, "attempt", attempt, "err", err)
			timer.Reset(discBackoff(d.opts.RetryMin, d.opts.RetryMax, attempt))
			attempt++
			continue
		case !alive:
			if !lost {
				d.report(r, backends.RegistrationLost, fmt.Errorf("redis discovery: instance %q of %q was missing on the server: %w", r.id, r.name, backends.ErrNotFound))
			}
			lost = false
			d.report(r, backends.RegistrationRestored, nil)
		case lost:
			lost = false
			d.report(r, backends.RegistrationRestored, nil)
		}
		attempt = 0
		ttl = newTTL
		timer.Reset(discKeepAliveInterval(ttl))
	}
}

// refresh runs one keep-alive under r.mu. alive is false when the instance
// had vanished and has just been registered again.
func (d *Discovery) refresh(r *discReg) (alive bool, ttl time.Duration, err error) {
	const op = "redis discovery: keep-alive"
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false, r.ttl, errDiscStopped
	}
	cl, err := d.conn.client()
	if err != nil {
		return false, r.ttl, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, discCallTimeout(r.ttl))
	defer cancel()
	n, err := d.keys(r.svc.Name).run(ctx, cl, discKeepAliveScript, r.svc.ID, r.info, r.ttl.Milliseconds()).Int()
	if err != nil {
		return false, r.ttl, mapErr(op, err)
	}
	return n == 1, r.ttl, nil
}

// report queues a registration event for OnRegistration.
func (d *Discovery) report(r *discReg, state backends.RegistrationState, cause error) {
	d.logger.Debug("registration "+state.String(), "service", r.name, "id", r.id, "err", cause)
	if d.opts.OnRegistration == nil {
		return
	}
	d.cbMu.Lock()
	d.cbQueue = append(d.cbQueue, backends.RegistrationEvent{
		ServiceID:   r.id,
		ServiceName: r.name,
		State:       state,
		Err:         cause,
	})
	d.cbMu.Unlock()
	select {
	case d.cbWake <- struct{}{}:
	default:
	}
}

// dispatchLoop calls OnRegistration in order, one event at a time, until
// Close; events still queued then are dropped.
func (d *Discovery) dispatchLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.cbWake:
		}
		for d.ctx.Err() == nil {
			d.cbMu.Lock()
			if len(d.cbQueue) == 0 {
				d.cbMu.Unlock()
				break
			}
			ev := d.cbQueue[0]
			d.cbQueue = d.cbQueue[1:]
			d.cbMu.Unlock()
			d.opts.OnRegistration(ev)
		}
	}
}

// discBackoff is capped exponential backoff with jitter: a random duration
// in [d/2, d] where d = min(lo·2^attempt, hi).
func discBackoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 32 {
		if x := lo << attempt; x > 0 && x < hi {
			d = x
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Deregister stops the keep-alive of serviceID and removes the instance at
// once (watchers see a removal). ErrNotFound when this Discovery holds no
// registration with that ID. The local registration is dropped even when
// the server cannot be reached; the error is returned and the instance then
// expires with its TTL.
func (d *Discovery) Deregister(ctx context.Context, serviceID string) error {
	const op = "redis discovery: deregister"
	if err := backends.ValidateName("service id", serviceID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return d.errClosed(op)
	}
	r := d.regs[serviceID]
	if r == nil {
		d.mu.Unlock()
		return fmt.Errorf("%s: instance %q: %w", op, serviceID, backends.ErrNotFound)
	}
	delete(d.regs, serviceID)
	d.releaseService(r.name)
	d.mu.Unlock()

	r.mu.Lock()
	wasStopped := r.stopped
	r.stopped = true
	svc, info := r.svc, r.info
	r.mu.Unlock()
	r.cancel()
	<-r.done
	if wasStopped { // its first write failed: it never existed
		return fmt.Errorf("%s: instance %q: %w", op, serviceID, backends.ErrNotFound)
	}
	return d.remove(ctx, op, svc, info)
}

func (d *Discovery) remove(ctx context.Context, op string, svc backends.ServiceInfo, info string) error {
	cl, err := d.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return mapErr(op, d.keys(svc.Name).run(ctx, cl, discDeregisterScript, svc.ID, info).Err())
}

// Discover returns the live instances of serviceName (deadline not passed
// and data present), sorted by ID. Expired instances are swept first, so
// their removal reaches watchers even when no Discovery sweeps this service.
func (d *Discovery) Discover(ctx context.Context, serviceName string) ([]backends.ServiceInfo, error) {
	const op = "redis discovery: discover"
	if err := backends.ValidateName("service name", serviceName); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed(op)
	}
	snap, err := d.snapshot(ctx, op, serviceName, false)
	if err != nil {
		return nil, err
	}
	out := make([]backends.ServiceInfo, 0, len(snap.instances))
	for _, e := range snap.instances {
		out = append(out, e.svc)
	}
	return out, nil
}

// discInstance is an instance with the JSON it was stored as.
type discInstance struct {
	svc backends.ServiceInfo
	raw string
}

type discSnapshot struct {
	epoch     string
	seq       uint64
	instances []discInstance // sorted by ID
}

// snapshot sweeps, then lists the live instances and the log position in
// one script. With start, a missing log epoch is created (watches need one).
func (d *Discovery) snapshot(ctx context.Context, op, service string, start bool) (discSnapshot, error) {
	cl, err := d.conn.client()
	if err != nil {
		return discSnapshot{}, fmt.Errorf("%s: %w", op, err)
	}
	flag := "0"
	if start {
		flag = "1"
	}
	vals, err := d.keys(service).run(ctx, cl, discSnapshotScript, flag).StringSlice()
	if err != nil {
		return discSnapshot{}, mapErr(op, err)
	}
	if len(vals) < 2 || len(vals)%2 != 0 {
		return discSnapshot{}, fmt.Errorf("%s: unexpected snapshot reply of %d values", op, len(vals))
	}
	snap := discSnapshot{epoch: vals[0]}
	if vals[1] != "" {
		if snap.seq, err = strconv.ParseUint(vals[1], 10, 64); err != nil {
			return discSnapshot{}, fmt.Errorf("%s: bad log sequence %q", op, vals[1])
		}
	}
	for i := 2; i < len(vals); i += 2 {
		svc, ok := d.decode(service, vals[i], vals[i+1])
		if ok {
			snap.instances = append(snap.instances, discInstance{svc: svc, raw: vals[i+1]})
		}
	}
	slices.SortFunc(snap.instances, func(a, b discInstance) int { return strings.Compare(a.svc.ID, b.svc.ID) })
	return snap, nil
}

// decode parses stored instance JSON; data that is not ours is logged and
// skipped rather than failing every reader.
func (d *Discovery) decode(service, id, raw string) (backends.ServiceInfo, bool) {
	var svc backends.ServiceInfo
	if err := json.Unmarshal([]byte(raw), &svc); err != nil {
		d.logger.Warn("skipping undecodable instance", "service", service, "id", id, "err", err)
		return svc, false
	}
	svc.ID, svc.Name = id, service
	return svc, true
}

// HealthCheck reports whether Redis answers (the connector's health).
func (d *Discovery) HealthCheck(ctx context.Context) error {
	if d.isClosed() {
		return d.errClosed("redis discovery: health check")
	}
	return d.conn.HealthCheck(ctx)
}

// Close stops the sweeper, every watch (their channels close) and every
// keep-alive, then deregisters this value's instances best-effort within 2s
// (unreachable: they expire with their TTL). It does not disconnect the
// connector. Close is idempotent; other calls afterwards return ErrClosed.
// Registration events not yet delivered are dropped; OnRegistration must not
// call Close (Close waits for the goroutine that calls it).
func (d *Discovery) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	regs := make([]*discReg, 0, len(d.regs))
	for _, r := range d.regs {
		regs = append(regs, r)
	}
	d.regs = make(map[string]*discReg)
	d.mu.Unlock()

	d.cancel()
	d.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), discCloseTimeout)
	defer cancel()
	for _, r := range regs {
		r.mu.Lock()
		stopped := r.stopped
		r.stopped = true
		svc, info := r.svc, r.info
		r.mu.Unlock()
		if stopped {
			continue
		}
		if err := d.remove(ctx, "redis discovery: close", svc, info); err != nil {
			d.logger.Debug("deregister on close failed", "service", svc.Name, "id", svc.ID, "err", err)
		}
	}
	return nil
}

// sweepLoop removes expired instances of the services in use here, so their
// removal is logged (and watchers told) even when their owner died.
func (d *Discovery) sweepLoop() {
	defer d.wg.Done()
	t := time.NewTicker(discSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		names := make([]string, 0, len(d.services))
		for n := range d.services {
			names = append(names, n)
		}
		d.mu.Unlock()
		cl, err := d.conn.client()
		if err != nil {
			continue
		}
		for _, n := range names {
			ctx, cancel := context.WithTimeout(d.ctx, discOpTimeout)
			err := d.keys(n).run(ctx, cl, discSweepScript).Err()
			cancel()
			if d.ctx.Err() != nil {
				return
			}
			if err != nil {
				d.logger.Debug("sweep failed", "service", n, "err", err)
				break // the server is likely down; try again next tick
			}
		}
	}
}

// Watch sends a ServiceSnapshot of serviceName (taken atomically with the
// log position), then one event per change read from the service's log,
// until ctx ends or Close (the channel is then closed). The snapshot is
// taken before Watch returns; its failure is returned.
//
// Nothing is lost: reads resume from the last log entry seen, retrying with
// backoff while Redis is unreachable. When the log cannot continue where
// the watch left off — entries trimmed away, or a new epoch because the
// server came back empty — the watch re-lists and sends exactly the
// difference to what it has sent so far (Added/Updated/Removed). Events that
// would not change the watcher's view (a repeated add, an identical update,
// removing an unknown ID) are not sent. Removed events carry the last
// ServiceInfo the watcher saw.
func (d *Discovery) Watch(ctx context.Context, serviceName string) (<-chan backends.ServiceEvent, error) {
	const op = "redis discovery: watch"
	if err := backends.ValidateName("service name", serviceName); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed(op)
	}
	snap, err := d.snapshot(ctx, op, serviceName, true)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.ctx, cancel)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		stop()
		cancel()
		return nil, d.errClosed(op)
	}
	d.useService(serviceName)
	d.wg.Add(1)
	d.mu.Unlock()

	keys := d.keys(serviceName)
	w := &discWatch{
		d:       d,
		service: serviceName,
		keys:    keys,
		ch:      make(chan backends.ServiceEvent, discWatchBuffer),
		view:    make(map[string]discInstance, len(snap.instances)),
		logCursor: logCursor{
			stream: keys.log,
			epoch:  snap.epoch,
			last:   snap.seq,
		},
	}
	list := make([]backends.ServiceInfo, 0, len(snap.instances))
	for _, e := range snap.instances {
		w.view[e.svc.ID] = e
		list = append(list, e.svc)
	}
	w.ch <- backends.ServiceEvent{Type: backends.ServiceSnapshot, Instances: list, Revision: snap.seq}
	go func() {
		defer d.wg.Done()
		defer close(w.ch)
		defer cancel()
		defer stop()
		defer func() {
			d.mu.Lock()
			d.releaseService(serviceName)
			d.mu.Unlock()
		}()
		w.run(wctx)
	}()
	return w.ch, nil
}

// discWatch is the state of one Watch goroutine.
type discWatch struct {
	d       *Discovery
	service string
	keys    discKeys
	ch      chan backends.ServiceEvent

	logCursor                         // where the view stands in the log
	view      map[string]discInstance // what the watcher has been told
}

func (w *discWatch) run(ctx context.Context) {
	followLog(ctx, w.d.conn, w, false, w.d.opts.RetryMin, w.d.opts.RetryMax, w.d.logger,
		"redis discovery: watch", "service", w.service)
}

func (w *discWatch) cursor() *logCursor { return &w.logCursor }

func (w *discWatch) probeCmd(ctx context.Context, cl goredis.Scripter, last string) *goredis.Cmd {
	return w.keys.run(ctx, cl, discProbeScript, last)
}

// discSleep waits for d or ctx; false when ctx ended.
func discSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// apply turns one log entry into at most one event against the view. It
// returns false when ctx ended before the event could be delivered.
func (w *discWatch) apply(ctx context.Context, seq uint64, values map[string]any) bool {
	kind, _ := values["t"].(string)
	id, _ := values["id"].(string)
	raw, _ := values["info"].(string)
	old, known := w.view[id]
	switch kind {
	case "added", "updated":
		svc, ok := w.d.decode(w.service, id, raw)
		if !ok || (known && old.raw == raw) {
			return true
		}
		w.view[id] = discInstance{svc: svc, raw: raw}
		typ := backends.ServiceAdded
		if known {
			typ = backends.ServiceUpdated
		}
		return sendEvent(ctx, w.ch, backends.ServiceEvent{Type: typ, Service: svc, Revision: seq})
	case "removed":
		if !known {
			return true
		}
		delete(w.view, id)
		return sendEvent(ctx, w.ch, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old.svc, Revision: seq})
	}
	w.d.logger.Warn("skipping unknown log entry", "service", w.service, "type", kind)
	return true
}

// resync re-lists the service and sends the difference to the view.
func (w *discWatch) resync(ctx context.Context, cl goredis.UniversalClient) error {
	const op = "redis discovery: watch"
	snap, err := w.d.snapshot(ctx, op, w.service, true)
	if err != nil {
		return err
	}
	w.d.logger.Debug("watch resync", "service", w.service, "from_epoch", w.epoch, "from_seq", w.last, "to_epoch", snap.epoch, "to_seq", snap.seq)
	cur := make(map[string]discInstance, len(snap.instances))
	ids := make([]string, 0, len(snap.instances)+len(w.view))
	for _, e := range snap.instances {
		cur[e.svc.ID] = e
		ids = append(ids, e.svc.ID)
	}
	for id := range w.view {
		if _, ok := cur[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var events []backends.ServiceEvent
	for _, id := range ids {
		old, had := w.view[id]
		now, has := cur[id]
		switch {
		case had && !has:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old.svc, Revision: snap.seq})
		case !had && has:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceAdded, Service: now.svc, Revision: snap.seq})
		case old.raw != now.raw:
			events = append(events, backends.ServiceEvent{Type: backends.ServiceUpdated, Service: now.svc, Revision: snap.seq})
		}
	}
	// The view moves first: if ctx ends mid-way the watch is over anyway.
	w.view, w.epoch, w.last = cur, snap.epoch, snap.seq
	for _, ev := range events {
		if !sendEvent(ctx, w.ch, ev) {
			return ctx.Err()
		}
	}
	return nil
}
