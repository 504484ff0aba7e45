package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/components"
	"github.com/baton-go/baton/internal/nodeaccess"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
)

// Option configures a Node.
type Option func(*nodeOptions)

type nodeOptions struct {
	logger               *slog.Logger
	system               *actor.ActorSystem
	embedded             nodeaccess.EmbeddedStarter
	settingsObserver     func(SettingsEvent)
	registrationObserver func(backends.RegistrationEvent)
}

// WithLogger sends the node's logs — and protoactor's, and the backends'
// — to logger. Default: nothing is printed.
func WithLogger(l *slog.Logger) Option { return func(o *nodeOptions) { o.logger = l } }

// WithActorSystem runs the node's actors in an existing actor system (the
// node then does not shut it down on Stop). Default: a system of its own,
// with protoactor's logs routed to the node's logger.
func WithActorSystem(s *actor.ActorSystem) Option { return func(o *nodeOptions) { o.system = s } }

// WithRegistrationObserver calls f when a registration made through
// node.Discovery() is lost (its lease or key vanished: a backend restart,
// a partition longer than its TTL) and again when the node has restored
// it, which it keeps trying until it succeeds or the service is
// deregistered. f is called from one goroutine, one event at a time, and
// must not block for long. It is the node's counterpart of
// backends.DiscoveryOptions.OnRegistration. Default: no observer (the
// events are still logged).
func WithRegistrationObserver(f func(backends.RegistrationEvent)) Option {
	return func(o *nodeOptions) { o.registrationObserver = f }
}

// Node is one Baton node: the connector supervision tree, one actor per
// component, and typed facades over them.
//
//	node, err := runtime.New(cfg, runtime.WithLogger(logger))
//	if err != nil { … }
//	if err := node.Start(ctx); err != nil { … }
//	defer node.Stop(context.Background())
//	cache := node.Cache("sessions")
//
// Start is called once. Stop may be called any number of times (the calls
// after the first return nil); after Stop, Start and every facade answer
// backends.ErrClosed.
type Node struct {
	cfg  Spec
	opts nodeOptions
	log  *slog.Logger

	mu    sync.Mutex
	state nodeState

	system    *actor.ActorSystem
	ownSystem bool
	embedded  nodeaccess.EmbeddedServer
	redisConn *redis.Connector
	etcdConn  *etcd.Connector
	ns        backends.Namespace

	supervisor   *actor.PID
	cachePID     *actor.PID
	lockPID      *actor.PID
	electionPID  *actor.PID
	discoveryPID *actor.PID
	configPID    *actor.PID

	locks     *LockClient
	election  *ElectionClient
	discovery *DiscoveryClient
	config    *ConfigClient
	settings  *settingsReloader

	// stops run in reverse order on Stop.
	stops []namedStop

	caches  map[string]*CacheClient
	configs map[string]*ConfigClient // ConfigWith's facades
}

type nodeState int

const (
	stateNew nodeState = iota
	stateStarting
	stateRunning
	stateStopped
)

type namedStop struct {
	name string
	stop func(ctx context.Context) error
}

// New validates cfg and returns a node that is not yet started.
func New(cfg Spec, opts ...Option) (*Node, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, caches: map[string]*CacheClient{}, configs: map[string]*ConfigClient{}}
	for _, o := range opts {
		o(&n.opts)
	}
	if cfg.UsesEmbedded() && n.opts.embedded == nil {
		return nil, backends.Invalid("backends", "none",
			"no redis or etcd configured: configure one, or pass embedded.Option() for the embedded etcd default")
	}
	n.log = n.opts.logger
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.ns = backends.Namespace{Root: cfg.Root, Env: cfg.Env}
	return n, nil
}

// Spec returns the node's configuration (with defaults applied).
func (n *Node) Spec() Spec { return n.cfg }

// ActorSystem returns the actor system the node's actors live in.
func (n *Node) ActorSystem() *actor.ActorSystem { return n.system }

// Start connects the backends (failing with ErrUnavailable, within ctx, when
// one cannot be reached), then starts the connector supervisor and the
// component actors. On failure everything started so far is stopped.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	switch n.state {
	case stateStopped:
		n.mu.Unlock()
		return fmt.Errorf("node: start: %w", backends.ErrClosed)
	case stateStarting, stateRunning:
		n.mu.Unlock()
		return fmt.Errorf("node: already started: %w", backends.ErrInvalidArgument)
	}
	n.state = stateStarting
	n.mu.Unlock()

	defer func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if err != nil {
			_ = n.runStops(context.WithoutCancel(ctx))
			n.state = stateStopped
			return
		}
		n.state = stateRunning
	}()
	return n.start(ctx)
}

func (n *Node) onStop(name string, f func(ctx context.Context) error) {
	n.stops = append(n.stops, namedStop{name: name, stop: f})
}

func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	// 1. The embedded default.
	if cfg.UsesEmbedded() {
		srv, err := n.opts.embedded(ctx, cfg.Embedded.DataDir, n.log)
		if err != nil {
			return fmt.Errorf("node: embedded etcd: %w", err)
		}
		n.embedded = srv
		n.onStop("embedded etcd", func(context.Context) error { return srv.Close() })
		ec := etcd.DefaultConfig()
		ec.Endpoints = srv.Endpoints()
		cfg.Etcd = &ec
		// From here on the node's configuration names the server it runs
		// (Spec reports its endpoints).
		n.cfg.Etcd, n.cfg.Embedded.Enabled = &ec, false
	}

	// 2. The actor system.
	if n.opts.system != nil {
		n.system = n.opts.system
	} else {
		n.system = actors.NewSystem(n.log)
		n.ownSystem = true
		sys := n.system
		n.onStop("actor system", func(context.Context) error { sys.Shutdown(); return nil })
	}

	// 3. Connectors: connect now so a dead backend fails Start within ctx.
	// etcd first: a Redis endpoint given as a service name is resolved
	// through discovery on etcd.
	var conns []backends.Connector
	uses := n.uses()
	if uses[backends.BackendEtcd] {
		c, err := etcd.NewConnector(*cfg.Etcd, n.log.With("backend", "etcd"))
		if err != nil {
			return err
		}
		if err := n.connect(ctx, c); err != nil {
			return err
		}
		n.etcdConn = c
		conns = append(conns, c)
	}
	if uses[backends.BackendRedis] {
		rc := *cfg.Redis
		var follow func(*redis.Connector)
		if cfg.RedisService != "" {
			addr, f, err := n.startRedisFollower(ctx)
			if err != nil {
				return err
			}
			rc.URL, rc.Addrs, follow = "", []string{addr}, f
		}
		c, err := redis.NewConnector(rc, n.log.With("backend", "redis"))
		if err != nil {
			return err
		}
		if err := n.connect(ctx, c); err != nil {
			return err
		}
		n.redisConn = c
		conns = append(conns, c)
		if follow != nil {
			follow(c)
		}
	}

	// 4. The connector supervisor.
	sup, err := n.spawn("baton-connectors", components.NewConnectorSupervisorProps(components.ConnectorSupervisorConfig{
		Connectors:     conns,
		HealthInterval: cfg.Connector.HealthInterval,
		ConnectTimeout: cfg.Components.OpTimeout,
		Backoff:        components.Backoff{Initial: cfg.Connector.BackoffInitial, Max: cfg.Connector.BackoffMax},
		RefusedRetry:   cfg.Connector.RefusedRetry,
		Logger:         n.log,
	}))
	if err != nil {
		return err
	}
	n.supervisor = sup
	if err := n.waitConnectorsUp(ctx); err != nil {
		return err
	}

	// 5. Component actors, config first: the others read their settings
	// from it.
	for _, start := range []func(context.Context) error{n.startConfig, n.startDiscovery, n.startLock, n.startElection, n.startCache, n.startSettings} {
		if err := start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// connect connects c within ctx and registers its Disconnect. The
// connector's error names the backend, its address and the cause.
func (n *Node) connect(ctx context.Context, c backends.Connector) error {
	if err := c.Connect(ctx); err != nil {
		return err
	}
	n.onStop("connector "+c.Backend(), func(ctx context.Context) error { return c.Disconnect(ctx) })
	return nil
}

func (n *Node) uses() map[string]bool {
	b := n.cfg.Backends
	return map[string]bool{b.Cache: true, b.Lock: true, b.Discovery: true, b.Config: true}
}

// spawn starts a named top-level actor and registers its stop.
func (n *Node) spawn(name string, props *actor.Props) (*actor.PID, error) {
	pid, err := n.system.Root.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("node: spawn %s: %w", name, err)
	}
	root := n.system.Root
	n.onStop("actor "+name, func(ctx context.Context) error {
		return waitFuture(ctx, root.StopFuture(pid))
	})
	return pid, nil
}

func waitFuture(ctx context.Context, f *actor.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Wait() }()
	select {
	case err := <-done:
		if errors.Is(err, actor.ErrTimeout) {
			return nil
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) backendOf(component string) string {
	switch component {
	case backends.ComponentCache:
		return n.cfg.Backends.Cache
	case backends.ComponentLock, backends.ComponentElection:
		return n.cfg.Backends.Lock
	case backends.ComponentDiscovery:
		return n.cfg.Backends.Discovery
	default:
		return n.cfg.Backends.Config
	}
}

func (n *Node) startCache(context.Context) error {
	backend := n.backendOf(backends.ComponentCache)
	opts := func(name string) backends.CacheOptions {
		return backends.CacheOptions{Namespace: n.ns, Name: name, MaxValueSize: n.cfg.Components.MaxValueSize}
	}
	newCache := func(name string) (backends.Cache, error) {
		if backend == backends.BackendRedis {
			return redis.NewCache(n.redisConn, opts(name))
		}
		return etcd.NewCache(n.etcdConn, opts(name))
	}
	pid, err := n.spawn("baton-cache", components.NewCacheActorProps(components.CacheActorConfig{
		NewCache: newCache, Backend: backend, Supervisor: n.supervisor,
		OpTimeout: n.cfg.Components.OpTimeout, MaxBatch: n.cfg.Components.CacheMaxBatch,
		DefaultTTL: n.cfg.Components.CacheDefaultTTL, Logger: n.log,
	}))
	if err != nil {
		return err
	}
	n.cachePID = pid
	return nil
}

// Cache returns the facade of the named cache (backends.Cache, plus
// GetOrLoad). Every call for a name returns the same facade: it is safe
// for concurrent use, shared by every caller and owned by the node — it
// has nothing to close, and Stop ends it. Before Start and after Stop its
// calls return ErrClosed.
func (n *Node) Cache(name string) *CacheClient {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateRunning {
		return newCacheClient(nil, nil, name, nil)
	}
	if c, ok := n.caches[name]; ok {
		return c
	}
	c := newCacheClient(n.system.Root, n.cachePID, name, n.lockerLocked())
	n.caches[name] = c
	return c
}

// rootOrNil returns the root context, nil before Start (facades then
// answer ErrClosed); callers hold n.mu.
func (n *Node) rootOrNil() *actor.RootContext {
	if n.system == nil {
		return nil
	}
	return n.system.Root
}

// lockerLocked returns the node's locker facade for GetOrLoad.
func (n *Node) lockerLocked() backends.Locker {
	if n.locks == nil {
		return nil
	}
	return n.locks
}

// Stop stops the component actors, the supervisor, the connectors, the
// actor system (if the node owns it) and the embedded server, in reverse
// order of start; errors are joined.
//
// Stop is idempotent: a second call (or a call after a Start that failed,
// or before any Start) returns nil, so a deferred Stop after an explicit
// one reports nothing. Start after Stop returns ErrClosed.
//
// A backend that cannot be reached does not fail Stop: what the node could
// not undo there (deregistrations, releases, resignations) is logged at
// warning level and expires with its TTL on the server.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateStopped {
		return nil
	}
	n.state = stateStopped
	return n.runStops(ctx)
}

// stopStepTimeout bounds one step of Stop.
const stopStepTimeout = 10 * time.Second

func (n *Node) runStops(ctx context.Context) error {
	var errs []error
	for i := len(n.stops) - 1; i >= 0; i-- {
		s := n.stops[i]
		sctx, cancel := context.WithTimeout(ctx, stopStepTimeout)
		began := time.Now()
		err := s.stop(sctx)
		cancel()
		n.log.Debug("baton: node stop", "step", s.name, "took", time.Since(began), "err", err)
		switch {
		case err == nil, errors.Is(err, backends.ErrClosed):
		case backendGone(ctx, err):
			n.log.Warn("baton: node stop: backend unreachable; what was left there expires with its TTL",
				"step", s.name, "err", err)
		default:
			errs = append(errs, fmt.Errorf("stop %s: %w", s.name, err))
		}
	}
	n.stops = nil
	return errors.Join(errs...)
}

// backendGone reports whether a stop step failed only because its backend
// did not answer (unreachable, or the step's own bound ran out while the
// caller's ctx still had time): nothing is left running on this node, and
// the server lets what it still holds expire.
func backendGone(ctx context.Context, err error) bool {
	if errors.Is(err, backends.ErrUnavailable) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// ConnectorHealth is the state of one backend connector.
type ConnectorHealth struct {
	Backend string // "redis" or "etcd"
	State   string // "up", "down", "connecting", "closed"
	Attempt uint32 // failed attempts since last up
	Err     error  // last failure while not up
}

// Health asks the connector supervisor for the state of every backend and
// round-trips to each server (HealthCheck) within ctx.
func (n *Node) Health(ctx context.Context) ([]ConnectorHealth, error) {
	n.mu.Lock()
	root, sup, running := n.rootOrNil(), n.supervisor, n.state == stateRunning
	n.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("node: health: %w", backends.ErrClosed)
	}
	resp, err := actors.Request[*connectorv1.StateResponse](ctx, root, sup, &connectorv1.StateRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]ConnectorHealth, 0, len(resp.GetConnectors()))
	for _, c := range resp.GetConnectors() {
		h := ConnectorHealth{Backend: c.GetBackend(), Attempt: c.GetAttempt(),
			State: strings.ToLower(strings.TrimPrefix(c.GetState().String(), "STATE_"))}
		if c.GetCause() != nil {
			h.Err = c.GetCause().Err()
		}
		var conn backends.Connector
		switch c.GetBackend() {
		case backends.BackendRedis:
			conn = n.redisConn
		case backends.BackendEtcd:
			conn = n.etcdConn
		}
		if conn != nil && h.State == "up" {
			if err := conn.HealthCheck(ctx); err != nil {
				h.State, h.Err = "down", err
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// waitConnectorsUp polls the supervisor (bounded by ctx) until every
// connector actor reports UP.
func (n *Node) waitConnectorsUp(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := actors.Request[*connectorv1.StateResponse](ctx, n.system.Root, n.supervisor, &connectorv1.StateRequest{})
		if err != nil {
			return fmt.Errorf("node: waiting for connectors: %w", err)
		}
		up := true
		for _, c := range resp.GetConnectors() {
			up = up && c.GetState() == connectorv1.State_STATE_UP
		}
		if up {
			return nil
		}
		select {
		case <-ctx.Done():
			return backends.Unavailable("node: waiting for connectors", ctx.Err())
		case <-tick.C:
		}
	}
}
