// Package snapshot keeps configuration readable while its backend is down.
// A Fallback wraps any backends.ConfigCenter, remembers in a local file the
// last values it saw, and answers reads from that file when the backend
// cannot be reached.
//
//	cc, err := snapshot.New(center, "/var/lib/app/config-snapshot.json",
//		snapshot.Options{ReadTimeout: time.Second})
//	if err != nil { … } // a file that cannot be parsed: backends.ErrInvalidArgument
//	it, err := cc.Lookup(ctx, "db/host")
//	if it.Stale { … } // served from the file, the backend is unreachable
//
// A Fallback is itself a backends.ConfigCenter, so it can stand wherever one
// is expected; Lookup and LookupPrefix are GetItem and ListItems that also
// say whether the answer came from the file.
package snapshot
