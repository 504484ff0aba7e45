// Package typed puts values of a Go type on top of a byte cache: a Cache[T]
// encodes with a Codec[T] on the way in and decodes on the way out, and
// otherwise passes every call to the backends.Cache it wraps.
//
// Any backends.Cache works — backends/redis, backends/etcd or the node's
// cache facade — and nothing here depends on which:
//
//	users := typed.New[User](cache, nil) // nil codec: JSON
//	if err := users.Set(ctx, "42", User{Name: "ada"}, time.Minute); err != nil { … }
//	u, err := users.Get(ctx, "42") // backends.ErrNotFound when missing
//
// JSON is the default codec; Proto stores protobuf messages in their wire
// format. A value that cannot be encoded or decoded is reported as
// backends.ErrInvalidArgument, so errors keep matching the backends
// sentinels.
package typed
