// Package actors is what an application's own actors need to talk to
// Baton's component actors: the typed Request and RequestAsync helpers,
// SubscriberOf for watch and subscribe requests, and NewSystem for an actor
// system that logs through an injected *slog.Logger.
//
// The component actors themselves (connector supervisor, cache, lock,
// election, discovery, config) are started by a runtime.Node; address them
// with the PIDs of runtime.Node.PIDs and the request messages of package
// messages (cachev1, lockv1, configv1, …). Each answers with a response
// carrying a statusv1.Status; Request turns that status into the backends
// sentinel errors.
//
// # Talking to the actors
//
// From plain Go code, use Request with a context:
//
//	pids := node.PIDs()
//	resp, err := actors.Request[*cachev1.GetResponse](ctx, node.ActorSystem().Root, pids.Cache,
//		&cachev1.GetRequest{Name: "sessions", Key: "u42"})
//	if errors.Is(err, backends.ErrNotFound) { … }
//
// Request derives its wait from ctx, maps dead letters to ErrUnavailable and
// a response's status to the sentinel errors. It blocks the caller until
// the reply: right for plain Go code, wrong inside an actor's Receive, whose
// mailbox would stall meanwhile. There, use RequestAsync: it returns at once
// and runs a typed continuation on the actor's goroutine when the reply
// arrives —
//
//	actors.RequestAsync(ctx, cachePID, &cachev1.GetRequest{Name: "sessions", Key: "u42"}, time.Second,
//		func(resp *cachev1.GetResponse, err error) { … })
//
// — or send with ctx.Request(pid, req) and handle the response message in
// Receive like any other, checking resp.GetStatus().Err() yourself. Both
// are shown in the package examples. Package runtime wraps all of this in
// facades that implement the backends interfaces.
//
// A subscriber (of config, discovery, election or connector events) is any
// actor: it names itself in the request's subscriber field (SubscriberOf),
// receives events carrying a subscription id and a sequence number, and
// acknowledges them with subscriptionv1.Ack sent back to the actor it
// subscribed at. How the component actors work inside — auto-pipelining,
// shared watches, supervision — is described in docs/actors.md.
package actors
