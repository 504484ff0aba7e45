// Package subscriptionv1 holds what every subscription shares (proto
// package baton.subscription.v1): the Subscriber address, the Ack of flow
// control, the UnsubscribeRequest, and the Resync and Ended events.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package subscriptionv1
