// Package messages is the home of Baton's protobuf messages: the requests,
// responses and events that actors exchange, locally and between nodes.
// This package itself holds only documentation and the tests that keep the
// message families consistent; the messages live in one Go package per
// versioned proto package:
//
//	proto package          Go package                                            name
//	baton.status.v1        github.com/baton-go/baton/messages/status/v1          statusv1
//	baton.subscription.v1  github.com/baton-go/baton/messages/subscription/v1    subscriptionv1
//	baton.cache.v1         github.com/baton-go/baton/messages/cache/v1           cachev1
//	baton.lock.v1          github.com/baton-go/baton/messages/lock/v1            lockv1
//	baton.election.v1      github.com/baton-go/baton/messages/election/v1        electionv1
//	baton.discovery.v1     github.com/baton-go/baton/messages/discovery/v1       discoveryv1
//	baton.config.v1        github.com/baton-go/baton/messages/config/v1          configv1
//	baton.connector.v1     github.com/baton-go/baton/messages/connector/v1       connectorv1
//
// The .proto sources are under messages/proto/baton/<component>/v1.
//
// # Conventions
//
// Every request XRequest is answered by an XResponse whose field 1 is a
// baton.status.v1.Status, set on success too. Requests to a component with
// several named instances carry the name (cache name, config namespace,
// lock name, election). Times are google.protobuf.Duration; an unset or
// zero duration means what a zero time.Duration means in package backends.
//
// Subscriptions (config and discovery watches, leader observation,
// connector state) are opened by a request that carries a subscription_id
// chosen by the subscriber (a random id, unique on the serving actor) and,
// optionally, a Subscriber address (the request's sender when unset; set it
// when asking through a future). Every event carries the subscription_id
// and a seq numbering the subscription's events from 1. The subscriber
// acknowledges what it processed with subscriptionv1.Ack; an actor stops
// sending to a subscriber that falls too far behind and, once it has caught
// up, sends it a subscriptionv1.Resync: events were dropped and the state
// must be read again. subscriptionv1.Ended says the subscription is over;
// subscriptionv1.UnsubscribeRequest ends one. Locks and leaderships report
// their loss to the Subscriber of the granting request, with
// lockv1.LeaseLost and electionv1.LeadershipLost.
//
// # Status codes and errors
//
// The codes of statusv1.Code map one-to-one onto backends.Sentinels
// (CODE_NOT_FOUND ↔ backends.ErrNotFound, and so on), plus
// CODE_DEADLINE_EXCEEDED and CODE_CANCELED for the context errors and
// CODE_INTERNAL for everything else. The serving side answers with
// statusv1.FromError(err); the requesting side calls Status.Err, which
// returns nil for CODE_OK and otherwise an error that matches the same
// sentinel under errors.Is and carries the original text. A missing or
// CODE_UNSPECIFIED status is an internal error, never success. An error
// that matches a sentinel and a context error (an unreachable backend
// whose wait timed out) travels as the sentinel: CODE_UNAVAILABLE, not
// CODE_DEADLINE_EXCEEDED.
//
// # Regenerating
//
// The generated .pb.go files are committed. After editing a .proto, run
//
//	make proto
//
// from the repository root. It runs buf and protoc-gen-go at pinned
// versions through `go tool` (no system protoc): buf from tools/go.mod,
// protoc-gen-go from the main go.mod, so the generator always matches the
// google.golang.org/protobuf runtime. CI regenerates and fails when the
// result differs from what is committed.
package messages
