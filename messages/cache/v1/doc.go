// Package cachev1 holds the messages of the cache actor (proto package
// baton.cache.v1): get, set, delete, exists, clear, the batch forms and the
// auto-pipelining counters. Every request names its cache.
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package cachev1
