// Package actors holds Baton's actors: the connector supervisor and one
// actor per coordination component (cache, lock + election, discovery,
// config), plus the pieces they share — the typed Request helper, the
// subscription Hub and the backend gate.
//
// Every component actor owns backend components (the interfaces of package
// backends; it never sees a concrete Redis or etcd type) and answers the
// protobuf requests of package messages with responses that carry a
// statusv1.Status. Its mailbox serializes what it sends to the backend, but
// it is not a one-request-per-round-trip bottleneck:
//
//   - the cache actor drains what is queued into one backend batch
//     (auto-pipelining, see CacheActor);
//   - blocking work — a waiting lock acquire, a campaign, a watch — runs in
//     goroutines that report back with messages carrying the actor's
//     generation, so the mailbox keeps serving and a restarted actor ignores
//     stale continuations;
//   - watches are shared: one backend watch per key, prefix, service or
//     election per actor, fanned out to every subscriber by a Hub with
//     per-subscriber acknowledgement windows (a slow subscriber is skipped
//     and later told to Resync; nothing is dropped silently).
//
// Connectors are supervised: a connector actor that loses its backend
// fails, and the ConnectorSupervisor restarts it after a capped, jittered
// exponential delay (BackoffStrategy), forever. Component actors follow the
// published connector state through a BackendGate and answer UNAVAILABLE at
// once while their backend is down, resuming without a restart when it is
// back.
//
// # Talking to the actors
//
// From plain Go (or from an actor), use Request with a context:
//
//	resp, err := actors.Request[*cachev1.GetResponse](ctx, system.Root, cachePID,
//		&cachev1.GetRequest{Name: "sessions", Key: "u42"})
//	if errors.Is(err, backends.ErrNotFound) { … }
//
// Request derives its wait from ctx, maps dead letters to ErrUnavailable and
// a response's status to the backends sentinel errors. It blocks the
// caller until the reply: right for plain Go code, wrong inside an actor's
// Receive, whose mailbox would stall meanwhile. There, use RequestAsync: it
// returns at once and runs a typed continuation on the actor's goroutine
// when the reply arrives —
//
//	actors.RequestAsync(ctx, cachePID, &cachev1.GetRequest{Name: "sessions", Key: "u42"}, time.Second,
//		func(resp *cachev1.GetResponse, err error) { … })
//
// — or send with ctx.Request(pid, req) and handle the response message (a
// *cachev1.GetResponse here) in Receive like any other, checking
// resp.GetStatus().Err() yourself. Both are shown in the package examples.
// runtime.Node.PIDs gives the component actors' PIDs. Package runtime wraps
// all of this in facades that implement the backends interfaces.
//
// A subscriber (of config, discovery, election or connector events) is any
// actor: it names itself in the request's subscriber field, receives events
// carrying a subscription id and a sequence number, and acknowledges them
// with subscriptionv1.Ack sent back to the actor it subscribed at.
package actors
