// Package lockv1 holds the messages of distributed locks (proto package
// baton.lock.v1), served by the lock actor and the cluster's lock grains. A
// granted lease stays in the actor; requests refer to it by the lease_id
// the actor returned, and its loss arrives as a LeaseLost event. Leader
// elections have their own package, electionv1.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package lockv1
