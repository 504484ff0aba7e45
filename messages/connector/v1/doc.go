// Package connectorv1 holds the messages of the connector supervisor
// (proto package baton.connector.v1): each backend's connection state and
// the subscription through which component actors follow it.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package connectorv1
