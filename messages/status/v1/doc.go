// Package statusv1 holds the Status carried by every Baton response
// (proto package baton.status.v1) and its mapping to Go errors.
//
// The codes map one-to-one onto the sentinel errors of package backends
// (backends.Sentinels), plus the context errors and an internal code. The
// side that handles a request answers with FromError(err); the side that
// receives the response calls Status.Err, whose result matches the same
// sentinel under errors.Is:
//
//	resp := &cachev1.GetResponse{Status: statusv1.FromError(err)}
//	...
//	if err := resp.GetStatus().Err(); errors.Is(err, backends.ErrNotFound) { ... }
//
// The .pb.go files are generated from messages/proto; run `make proto`.
package statusv1
