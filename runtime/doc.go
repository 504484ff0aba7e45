// Package runtime is what an application starts: a Node described by one
// Spec, the supervision tree, one actor per component, and typed
// facades that implement the interfaces of package backends by messaging
// those actors.
//
//	cfg, err := runtime.LoadSpec("baton.yaml") // YAML + BATON_* environment overrides
//	node, err := runtime.New(cfg, runtime.WithLogger(logger))
//	if err := node.Start(ctx); err != nil { … } // ErrUnavailable when a backend is down
//	defer node.Stop(context.Background())
//
//	node.Cache("sessions")  // backends.Cache, auto-pipelined, plus GetOrLoad
//	node.Locks()            // backends.Locker: fencing tokens, local FIFO hand-off
//	node.Election()         // backends.Elector
//	node.Discovery()        // backends.ServiceDiscovery: self-healing registrations
//	node.Config()           // backends.ConfigCenter plus layered Resolve
//
// Every node — this one and a cluster node (package runtime/cluster) — has
// one accessor per component, returning the same facade types
// (CacheClient, LockClient, ElectionClient, DiscoveryClient, ConfigClient):
// X() or X(name) for the node's own namespace, XWith(opts) for the rest
// (here ConfigWith, for another config namespace; a cluster node also has
// CacheWith and LocksWith, for any key namespace).
//
// The facades are shared and owned by the node: every call returns the same
// facade (per name, for caches and config namespaces), safe for concurrent
// use by any number of callers. Do not Close them — Close on a shared lock
// facade would release every caller's leases — Stop closes them, releasing
// leases, resigning leaderships and deregistering services still held. Actor
// code can address the actors behind them directly: Node.PIDs, and
// actors.Request / actors.RequestAsync.
//
// # Backends
//
// Spec.Backends picks redis or etcd per component; any mix works.
// With neither Redis nor etcd configured the node runs an embedded etcd —
// pass embedded.Option() (package runtime/embedded), so programs that never
// use it don't link the etcd server; with a Redis section,
// Embedded.Enabled runs it for the components on etcd.
//
// A Redis endpoint can also be given as a service name
// (Spec.RedisService): it is resolved through discovery on etcd and
// followed when the registration moves.
//
// # Lifecycle
//
// Start connects every backend within its context, starts the connector
// supervisor, waits for the connectors to report up, then starts the config,
// discovery, lock, election and cache actors. Stop undoes it in reverse order and joins
// the errors; it is idempotent (later calls return nil), and a backend that
// is gone does not fail it (what could not be undone there is logged and
// expires with its TTL). Start and every facade answer backends.ErrClosed
// after Stop. Nothing keeps running after Stop.
//
// # Hot reload
//
// Component settings live in the config center (namespace "baton") under
// system/, component/<component>/ and instance/<component>/<node id>/ keys;
// the most specific layer wins and changes reach the running actors at once.
// See Settings for the list; an invalid value is rejected and the old one
// kept (WithSettingsObserver reports both).
package runtime
