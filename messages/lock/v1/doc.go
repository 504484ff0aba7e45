// Package lockv1 holds the messages of distributed locks and leader
// elections (proto package baton.lock.v1). A granted lease or leadership
// stays in the actor; requests refer to it by the lease_id or
// leadership_id the actor returned, and its loss arrives as a LeaseLost or
// LeadershipLost event.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package lockv1
