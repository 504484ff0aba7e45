package redis

import (
	"context"
	_ "embed" // Lua scripts
	"errors"
	"fmt"
	"log/slog"
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

// registry is the ServiceDiscovery NewDiscovery returns.
type registry struct {
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

var _ backends.ServiceDiscovery = (*registry)(nil)

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

// NewDiscovery returns service discovery that uses conn's client at call
// time, so it follows reconnects. opts.Namespace needs an Env; RetryMin and
// RetryMax default to 100ms and 5s. Each Watch holds one pooled connection
// while it waits in XREAD BLOCK (at most a second at a time): size the
// connector's pool for the concurrent watches, or share them (the actor
// layer runs one per service per node). Close stops keep-alives, watches
// and the expiry sweeper.
func NewDiscovery(conn *Connector, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
	s, err := newRegistry(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newRegistry is NewDiscovery with the concrete type, for this package's tests.
func newRegistry(conn *Connector, opts backends.DiscoveryOptions) (*registry, error) {
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
	d := &registry{
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

func (d *registry) keys(service string) discKeys {
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

func (d *registry) errClosed(op string) error {
	return fmt.Errorf("%s: discovery %w", op, backends.ErrClosed)
}

func (d *registry) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// useService and releaseService keep the sweeper's list; callers hold d.mu.
func (d *registry) useService(name string) { d.services[name]++ }

func (d *registry) releaseService(name string) {
	if d.services[name] <= 1 {
		delete(d.services, name)
		return
	}
	d.services[name]--
}

// HealthCheck reports whether Redis answers (the connector's health).
func (d *registry) HealthCheck(ctx context.Context) error {
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
func (d *registry) Close() error {
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
