// Package electionv1 holds the messages of leader elections (proto package
// baton.election.v1), served by the election actor. A won campaign's
// leadership stays in the actor; requests refer to it by the leadership_id
// the actor returned, its loss arrives as a LeadershipLost event, and
// ObserveRequest subscribes to the leader with LeaderChanged events.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package electionv1
