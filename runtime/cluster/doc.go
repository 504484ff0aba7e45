// Package cluster runs Baton nodes as a protoactor-go cluster over actor
// remoting: nodes find each other through Baton's own service discovery
// (on Redis or etcd), every lock name is one virtual actor (a grain)
// somewhere in the cluster, and nodes without a backend use the members'
// components.
//
//	sys := runtime.Spec{Redis: &redis.Config{URL: "redis://127.0.0.1:6379/0"}}
//	n, err := cluster.New(cluster.Spec{Name: "jobs", Bind: "127.0.0.1:7000", Node: &sys})
//	if err != nil { … }
//	if err := n.Start(ctx); err != nil { … } // ErrUnavailable when the backend is down
//	defer n.Stop(context.Background())
//
//	lease, err := n.Locks().Acquire(ctx, "nightly-report", backends.LockOptions{})
//	v, err := n.Cache("profiles").GetOrLoad(ctx, "user-42", backends.LoadOptions{TTL: time.Minute}, load)
//
// A client-only node leaves out Node and names Seeds:
//
//	c, err := cluster.New(cluster.Spec{Name: "jobs", Seeds: []string{"127.0.0.1:7000"}})
//
// # Membership
//
// Membership is a protoactor ClusterProvider on backends.ServiceDiscovery
// (Node.Members, Node.WaitMembers, Node.MembersChanged). A member registers
// as an instance of service Spec.Name (address, grain
// kinds) through the runtime's discovery actor, whose registrations keep
// themselves alive and come back by themselves after a lost lease — a
// backend restarted empty, a healed partition — which protoactor's own
// etcd provider does not do (asynkron/protoactor-go#1133). Every node
// watches the service and feeds protoactor's MemberList. A member missing
// from discovery stays while it answers pings; one whose connection broke
// and that does not answer is dropped at once; a dropped member that comes
// back is admitted again under a new member id. Client-only nodes register
// nothing and follow the service through a seed's discovery actor.
//
// # Grains and placement
//
// Members host three kinds: KindLock (one per lock name),
// KindCache (one per named cache) and KindConfig (one per config
// namespace), for any key namespace. Placement is protoactor's disthash
// identity lookup — rendezvous hashing over the members hosting a kind, and
// activation by the owner's placement actor, which also stops grains whose
// owner changed. The calling side resolves with the same hashing, bounded
// by a context (disthash's own lookup waits a fixed 5s and reads its state
// racily).
//
// Locks: all nodes' waiters for a name queue in the name's grain, which
// grants in arrival order and hands the lock to the next waiter as soon as
// it is released, with one backend write (backends.Handoffer; no polling,
// the lock never free in between — except once per second of continuous
// hand-offs, and on etcd when a
// contender outside the cluster queues in etcd). The backend lease and its
// fencing token stay the source of truth: a grain that moves or dies can
// only ever hand out what the backend grants, and a grain that stops gives
// up nothing — its holders take their leases to the next activation, which
// adopts them from the backend (backends.Adopter) — so mutual exclusion
// and strictly increasing tokens hold across topology changes.
// A grain death-watches its waiters and holders: it withdraws the waits of
// a holder that is gone at once, and frees its leases at once only when it
// stopped for sure or its node refuses connections (killed); a holder that
// is merely cut off or paused keeps its lease until it releases it or the
// TTL runs out. A facade death-watches the grains it waits in, follows the
// topology, and queues again where the grain went. Members are pinged
// through their actor systems, so a paused or hung host that answers no
// ping for Spec.SuspectAfter (3s by default) leaves the topology and
// its grains move.
//
// Caches: GetOrLoad runs the loader once per key at a time across the
// cluster: single-flight within a node and the key's lock grain across
// nodes, re-reading the cache once the lock is taken. A member's Cache and
// Config use its own component actors; a client-only node's use grains
// (CacheWith and ConfigWith reach any namespace from any node).
//
// # Remoting and protoactor-go pitfalls
//
// The pinned protoactor-go (v0.0.0-20240822202345-3c0e61ca19c9) needs care:
//
//   - A peer receiving a message type it does not link crashes (nil
//     dereference in remote's deserializer). Every node checks incoming
//     batches first and answers such a message with an INVALID_ARGUMENT
//     status (see remoteConfig).
//   - remote.Start replaces gRPC's global logger without synchronisation: a
//     data race with any gRPC client or server already running in the
//     process. Start starts remoting before the runtime node connects etcd
//     or starts the embedded etcd. Run at most one cluster node per process
//     (the tests run nodes as separate processes); a second node's
//     remote.Start races with the first's gRPC.
//   - Gossip, the BlockList and the graceful remote shutdown read and write
//     plain fields from several goroutines. Gossip is left idle (membership
//     comes from discovery) and remoting is stopped without the graceful
//     path (see Node.Stop).
//   - Spawn panics and RequestFuture's cluster call options leak into a
//     global default: Baton uses SpawnNamed and its own context-bounded
//     requests (actors.Request).
package cluster
