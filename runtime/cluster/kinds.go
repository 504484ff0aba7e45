package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"

	"github.com/baton-go/baton/internal/components"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	"github.com/baton-go/baton/runtime"
)

// The grain kinds members host. A grain's identity is the component
// instance it serves: "<root>/<env>/<name>" for a lock, plus the options
// that change the backend's behaviour for a cache ("/<max value size>")
// and a config namespace ("/<max value size>/<history limit>"), 0 meaning
// the member's default.
const (
	// KindLock is one lock name: a LockGrain (queue, hand-off, fencing).
	KindLock = "baton-lock"
	// KindCache is one named cache: a cache actor (auto-pipelining).
	KindCache = "baton-cache"
	// KindConfig is one config namespace: a config actor (watches,
	// snapshot fallback).
	KindConfig = "baton-config"
)

func lockIdentity(ns backends.Namespace, name string) string {
	ns = ns.WithDefaults()
	return ns.Root + "/" + ns.Env + "/" + name
}

func cacheIdentity(o backends.CacheOptions) string {
	return lockIdentity(o.Namespace, o.Name) + "/" + strconv.Itoa(o.MaxValueSize)
}

func configIdentity(o backends.ConfigOptions) string {
	return lockIdentity(o.Namespace, o.Name) + "/" + strconv.Itoa(o.MaxValueSize) + "/" + strconv.Itoa(o.HistoryLimit)
}

// grainIdentity is a parsed identity.
type grainIdentity struct {
	ns      backends.Namespace
	name    string
	numbers []int
}

func parseIdentity(id string, numbers int) (grainIdentity, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3+numbers {
		return grainIdentity{}, backends.Invalid("grain identity", id, "malformed")
	}
	g := grainIdentity{ns: backends.Namespace{Root: parts[0], Env: parts[1]}, name: parts[2]}
	if err := g.ns.Validate(); err != nil {
		return g, err
	}
	if err := backends.ValidateName("name", g.name); err != nil {
		return g, err
	}
	for _, p := range parts[3:] {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return g, backends.Invalid("grain identity", id, "malformed")
		}
		g.numbers = append(g.numbers, n)
	}
	return g, nil
}

// identityOf reads the cluster identity protoactor attaches to a grain.
func identityOf(ctx actor.Context) (ci *cluster.ClusterIdentity, err error) {
	defer func() {
		if recover() != nil {
			ci, err = nil, errors.New("not a grain")
		}
	}()
	return cluster.GetClusterIdentity(ctx), nil
}

// host provides the grains of a member with backend components on the
// member's runtime node: one Locker per namespace (shared by the lock
// grains of that namespace), one cache or config center per grain.
type host struct {
	log  *slog.Logger
	idle time.Duration

	mu      sync.Mutex
	rt      *runtime.Node // nil until the node runs
	lockers map[string]*sharedLocker
	grains  map[*actor.PID]struct{} // active lock grains
}

type sharedLocker struct {
	l    backends.Locker
	refs int
}

var errNotReady = backends.Unavailable("cluster grain", errors.New("member not ready"))

func (h *host) ready() (*runtime.Node, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rt == nil {
		return nil, errNotReady
	}
	return h.rt, nil
}

func (h *host) setRuntime(rt *runtime.Node) {
	h.mu.Lock()
	h.rt = rt
	h.mu.Unlock()
}

// closeLockers closes what passivated grains left; called at stop.
func (h *host) closeLockers() {
	h.mu.Lock()
	ls := h.lockers
	h.lockers = map[string]*sharedLocker{}
	h.rt = nil
	h.mu.Unlock()
	for _, s := range ls {
		if s.l != nil {
			_ = s.l.Close()
		}
	}
}

func (h *host) kinds() []*cluster.Kind {
	return []*cluster.Kind{
		cluster.NewKind(KindLock, components.NewLockGrainProps(components.LockGrainConfig{Activate: h.activateLock, IdleTimeout: h.idle})),
		cluster.NewKind(KindCache, actor.PropsFromProducer(func() actor.Actor { return &childGrain{build: h.buildCache} })),
		cluster.NewKind(KindConfig, actor.PropsFromProducer(func() actor.Actor { return &childGrain{build: h.buildConfig} })),
	}
}

// locker returns the shared Locker of ns and its release.
func (h *host) locker(rt *runtime.Node, ns backends.Namespace) (backends.Locker, func(), error) {
	in := nodeaccess.Of(rt)
	key := ns.Root + "/" + ns.Env
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.lockers[key]
	if s == nil {
		var (
			l   backends.Locker
			err error
		)
		opts := backends.LockerOptions{Namespace: ns}
		if in.Backend(backends.ComponentLock) == backends.BackendRedis {
			l, err = redis.NewLocker(in.Redis, opts)
		} else {
			l, err = etcd.NewLocker(in.Etcd, opts)
		}
		if err != nil {
			return nil, nil, err
		}
		s = &sharedLocker{l: l}
		if h.lockers == nil {
			h.lockers = map[string]*sharedLocker{}
		}
		h.lockers[key] = s
	}
	s.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			h.mu.Lock()
			s.refs--
			last := s.refs == 0 && h.lockers[key] == s
			if last {
				delete(h.lockers, key)
			}
			h.mu.Unlock()
			if last && s.l != nil {
				_ = s.l.Close()
			}
		})
	}
	return s.l, release, nil
}

// activation reads the identity of the grain being activated (with its
// numbers identity fields) and returns the node that will serve it.
func (h *host) activation(ctx actor.Context, numbers int) (grainIdentity, *runtime.Node, error) {
	ci, err := identityOf(ctx)
	if err != nil {
		return grainIdentity{}, nil, err
	}
	id, err := parseIdentity(ci.GetIdentity(), numbers)
	if err != nil {
		return grainIdentity{}, nil, err
	}
	rt, err := h.ready()
	if err != nil {
		return grainIdentity{}, nil, err
	}
	return id, rt, nil
}

func (h *host) activateLock(ctx actor.Context) (components.LockActorConfig, string, func(), error) {
	var cfg components.LockActorConfig
	id, rt, err := h.activation(ctx, 0)
	if err != nil {
		return cfg, "", nil, err
	}
	in := nodeaccess.Of(rt)
	locker, release, err := h.locker(rt, id.ns)
	if err != nil {
		return cfg, "", nil, err
	}
	self := ctx.Self()
	h.mu.Lock()
	if h.grains == nil {
		h.grains = map[*actor.PID]struct{}{}
	}
	h.grains[self] = struct{}{}
	h.mu.Unlock()
	unlock := release
	release = func() {
		h.mu.Lock()
		delete(h.grains, self)
		h.mu.Unlock()
		unlock()
	}
	sc := rt.Spec()
	return components.LockActorConfig{
		Locker: locker, Backend: in.Backend(backends.ComponentLock), Supervisor: in.Supervisor,
		OpTimeout: sc.Components.OpTimeout, DefaultTTL: sc.Components.LockTTL,
		HandoffLimit: sc.Components.LockHandoffLimit, Owner: sc.NodeID, Logger: h.log,
	}, id.name, release, nil
}

// resetLockGrains resets every lock grain hosted here in place
// (components.LockGrainReset): holders keep their leases and bring them back,
// waiters queue again. Stopping them instead would race, in protoactor,
// the placement's handling of their termination with the topology
// updates a member that comes back sees.
func (h *host) resetLockGrains(root *actor.RootContext) int {
	h.mu.Lock()
	pids := make([]*actor.PID, 0, len(h.grains))
	for pid := range h.grains {
		pids = append(pids, pid)
	}
	h.mu.Unlock()
	for _, pid := range pids {
		root.Send(pid, &components.LockGrainReset{})
	}
	return len(pids)
}

// valueLimit is a client's maximum value size, capped by the member's.
func valueLimit(requested, member int) int {
	if requested <= 0 || requested > member {
		return member
	}
	return requested
}

func (h *host) buildCache(ctx actor.Context) (*actor.Props, func(), error) {
	id, rt, err := h.activation(ctx, 1)
	if err != nil {
		return nil, nil, err
	}
	in := nodeaccess.Of(rt)
	sc := rt.Spec()
	opts := backends.CacheOptions{Namespace: id.ns, Name: id.name, MaxValueSize: valueLimit(id.numbers[0], sc.Components.MaxValueSize)}
	backend := in.Backend(backends.ComponentCache)
	props := components.NewCacheActorProps(components.CacheActorConfig{
		NewCache: func(name string) (backends.Cache, error) {
			if name != id.name {
				return nil, backends.Invalid("cache name", name, "this grain serves cache "+id.name)
			}
			if backend == backends.BackendRedis {
				return redis.NewCache(in.Redis, opts)
			}
			return etcd.NewCache(in.Etcd, opts)
		},
		Backend: backend, Supervisor: in.Supervisor, OpTimeout: sc.Components.OpTimeout,
		MaxBatch: sc.Components.CacheMaxBatch, DefaultTTL: sc.Components.CacheDefaultTTL, Logger: h.log,
	})
	return props, func() {}, nil
}

func (h *host) buildConfig(ctx actor.Context) (*actor.Props, func(), error) {
	id, rt, err := h.activation(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	in := nodeaccess.Of(rt)
	sc := rt.Spec()
	opts := backends.ConfigOptions{Namespace: id.ns, Name: id.name,
		MaxValueSize: valueLimit(id.numbers[0], sc.Components.MaxValueSize), HistoryLimit: id.numbers[1]}
	backend := in.Backend(backends.ComponentConfig)
	var center backends.ConfigCenter
	if backend == backends.BackendRedis {
		center, err = redis.NewConfigCenter(in.Redis, opts)
	} else {
		center, err = etcd.NewConfigCenter(in.Etcd, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	props := components.NewConfigActorProps(components.ConfigActorConfig{
		Center: center, Name: id.name, Backend: backend, Supervisor: in.Supervisor,
		OpTimeout: sc.Components.OpTimeout, Logger: h.log,
	})
	release := func() {
		_ = center.Close()
	}
	return props, release, nil
}

// childGrain hosts a component actor as a grain: it builds the actor from
// its cluster identity when activated, runs it as its child and forwards
// every message to it (keeping the sender, so answers go straight back).
// The component is released when the grain stops.
type childGrain struct {
	build   func(ctx actor.Context) (*actor.Props, func(), error)
	child   *actor.PID
	release func()
	err     error
}

// Receive implements actor.Actor.
func (g *childGrain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		props, release, err := g.build(c)
		if err == nil {
			g.child, err = c.SpawnNamed(props, "component")
			if err != nil {
				release()
			}
		}
		if err != nil {
			g.err = fmt.Errorf("cluster grain: %w", err)
			return
		}
		g.release = release
	case *actor.Stopped, *actor.Restarting:
		if g.release != nil {
			g.release()
			g.release = nil
		}
	case *actor.Terminated:
		if g.child != nil && m.Who.GetId() == g.child.Id {
			c.Stop(c.Self()) // the component gave up for good
		}
	case *cluster.ClusterInit, actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if g.err != nil {
			if c.Sender() != nil {
				c.Respond(statusv1.FromError(g.err))
			}
			return
		}
		c.Forward(g.child)
	}
}
