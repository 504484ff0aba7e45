package cluster

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

type levels struct{ got []slog.Level }

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.got = append(l.got, r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

func TestPeerNoise(t *testing.T) {
	rec := &levels{}
	noise := newPeerNoise(rec)
	p := newProvider(providerConfig{Name: "noise"})
	p.members = []Member{{ID: "m1", Address: "127.0.0.1:7001"}}
	noise.members.Store(p)
	log := slog.New(noise).With("lib", "protoactor")

	log.Error("EndpointWriter lost connection", "address", "127.0.0.1:7001", "error", "EOF")
	log.Error("EndpointWriter lost connection", "address", "127.0.0.1:7999", "error", "EOF")
	log.Error("EndpointWriter failed to connect", "address", "127.0.0.1:7001", "retry", 0)
	log.Error("EndpointWriter failed to connect", "address", "127.0.0.1:7999", "retry", 0)
	log.Error("EndpointReader failed to send disconnection message")
	log.Error("something else entirely", "address", "127.0.0.1:7999")
	log.Warn("EndpointWriter lost connection", "address", "127.0.0.1:7001")
	assert.Equal(t, []slog.Level{
		slog.LevelInfo,  // a member's connection ended: it is shutting down
		slog.LevelDebug, // a departed peer
		slog.LevelWarn,  // a member that cannot be reached
		slog.LevelDebug, // a departed peer
		slog.LevelDebug, // our own shutdown
		slog.LevelError, // not peer noise: unchanged
		slog.LevelWarn,  // not at ERROR: unchanged
	}, rec.got)
}
