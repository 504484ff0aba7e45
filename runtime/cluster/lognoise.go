package cluster

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// peerNoise sits in front of the handler that receives protoactor's logs
// on a cluster node. protoactor reports at ERROR every connection to a peer
// that ends or cannot be made — also when the peer simply left the
// cluster, as in every rolling restart, and during this node's own
// shutdown. Membership is Baton's business (the provider reports joins,
// losses and departures), so those records are lowered:
//
//   - about an address that is no longer a member: DEBUG (the peer left;
//     late messages to it fail, as expected);
//   - a connection to a member that ended: INFO (a peer shutting down
//     closes its connections before its departure reaches us);
//   - a connection to a member that cannot be made: WARN (protoactor
//     retries; if the peer is gone, membership removes it).
//
// Every other record passes unchanged.
type peerNoise struct {
	next    slog.Handler
	members *atomic.Pointer[provider] // nil until the provider exists
}

// endpointRecords are protoactor's messages about peer connections, with
// the level a record about a current member gets.
var endpointRecords = map[string]slog.Level{
	"EndpointWriter lost connection":                      slog.LevelInfo,
	"EndpointWriter failed to connect":                    slog.LevelWarn,
	"EndpointWriter failed to create receive stream":      slog.LevelWarn,
	"EndpointWriter failed to send connect request":       slog.LevelWarn,
	"EndpointWriter failed to receive connect response":   slog.LevelWarn,
	"EndpointWriter error when closing the stream":        slog.LevelDebug,
	"EndpointWriter error when closing the client conn":   slog.LevelDebug,
	"EndpointReader failed to send disconnection message": slog.LevelDebug,
}

func newPeerNoise(next slog.Handler) *peerNoise {
	return &peerNoise{next: next, members: &atomic.Pointer[provider]{}}
}

// Enabled defers to next: records are only ever lowered, and Handle checks
// the lowered level again.
func (h *peerNoise) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *peerNoise) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		if level, ok := endpointRecords[r.Message]; ok {
			if !h.isMember(recordAddress(r)) {
				level = slog.LevelDebug
			}
			if !h.next.Enabled(ctx, level) {
				return nil
			}
			r.Level = level
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *peerNoise) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &peerNoise{next: h.next.WithAttrs(attrs), members: h.members}
}

func (h *peerNoise) WithGroup(name string) slog.Handler {
	return &peerNoise{next: h.next.WithGroup(name), members: h.members}
}

// isMember reports whether addr is a current member's address.
func (h *peerNoise) isMember(addr string) bool {
	p := h.members.Load()
	if p == nil || addr == "" {
		return false
	}
	for _, m := range p.Members() {
		if m.Address == addr {
			return true
		}
	}
	return false
}

// recordAddress returns the record's "address" attribute.
func recordAddress(r slog.Record) string {
	var addr string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "address" {
			addr = a.Value.String()
			return false
		}
		return true
	})
	return addr
}
