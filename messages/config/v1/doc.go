// Package configv1 holds the messages of the config center actor (proto
// package baton.config.v1): versioned get/set (with compare-and-set),
// list, watch, history, rollback and layered resolution.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package configv1
