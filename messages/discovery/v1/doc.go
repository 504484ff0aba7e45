// Package discoveryv1 holds the messages of the service discovery actor
// (proto package baton.discovery.v1): registration, lookup, watches of
// service instances and registration loss/restoration events.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package discoveryv1
