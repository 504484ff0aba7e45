// Package nodeaccess is how Baton's own packages reach the parts of a
// runtime.Node that are not API: runtime/cluster hosts grains on a node's
// shared connectors and builds the node's facades around grain PIDs, and
// Baton's tests drive component actors they spawned themselves through the
// same facades. Package runtime fills the variables in when it is
// initialised; nothing else may set them.
package nodeaccess

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

// Internals are the pieces of a started node a grain needs: the shared
// connectors (nil for a backend no component uses), the connector
// supervisor that component actors follow, and the backend of each
// component. They are zero before Start.
type Internals struct {
	Redis      *redis.Connector
	Etcd       *etcd.Connector
	Supervisor *actor.PID
	// Backend returns "redis" or "etcd" for a component name
	// (backends.ComponentCache, …).
	Backend func(component string) string
}

// ClientOptions configure the lock and election facades.
type ClientOptions struct {
	// CleanupTimeout bounds the clean-up requests a facade sends on its own
	// (withdrawing an abandoned wait, releasing on Close). Default: 5s.
	CleanupTimeout time.Duration
	// Logger. Default: discard.
	Logger *slog.Logger
}

// EmbeddedServer is a running embedded etcd (package runtime/embedded).
type EmbeddedServer interface {
	Endpoints() []string
	Close() error
}

// EmbeddedStarter starts an embedded etcd in dataDir ("" = a temporary
// dir).
type EmbeddedStarter func(ctx context.Context, dataDir string, logger *slog.Logger) (EmbeddedServer, error)

// WithEmbeddedEtcd returns the runtime.Option (as any) that makes a node
// start its embedded default with start: runtime/embedded.Option uses it,
// so programs that never use the embedded server don't link it. Set by
// package runtime.
var WithEmbeddedEtcd func(start EmbeddedStarter) any

// Set by package runtime. node is a *runtime.Node; the facades returned are
// runtime's (*runtime.CacheClient, …) and may be asserted to those types.
var (
	Of                 func(node any) Internals
	NewCacheClient     func(root *actor.RootContext, pid *actor.PID, name string, locker backends.Locker) backends.Cache
	NewConfigClient    func(root *actor.RootContext, pid *actor.PID, name string) backends.ConfigCenter
	NewDiscoveryClient func(root *actor.RootContext, pid *actor.PID, opts backends.DiscoveryOptions) backends.ServiceDiscovery
	NewLockClient      func(root *actor.RootContext, pid *actor.PID, opts ClientOptions) backends.Locker
	NewElectionClient  func(root *actor.RootContext, pid *actor.PID, opts ClientOptions) backends.Elector
)
