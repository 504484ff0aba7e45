// Package embedded runs a real, single-member etcd server inside the
// process (go.etcd.io/etcd/server/v3/embed) — Baton's zero-install default.
//
// It is a separate package because the etcd server is large: a program links
// it only when it asks for the embedded default, by passing Option() to
// runtime.New:
//
//	node, err := runtime.New(runtime.DefaultSpec(), embedded.Option())
//
// With no Redis or etcd configured, the node then starts this server on free
// 127.0.0.1 ports in a data directory (a temporary one unless
// Spec.Embedded.DataDir is set, so data can persist across runs) and
// uses it for every component.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/runtime"
)

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
	tempDir   string // removed on Close when the data dir was temporary
}

// Options configures Start.
type Options struct {
	// DataDir holds the server's data. Default: a new temporary directory,
	// removed by Close.
	DataDir string
	// Logger receives a line when the server starts and stops. etcd's own
	// zap logs are silenced. Default: discard.
	Logger *slog.Logger
	// ReadyTimeout bounds waiting for the server to serve. Default: 30s.
	ReadyTimeout time.Duration
}

// Config builds the embed configuration Baton uses for a single loopback
// member: client and peer URLs as given, no auto compaction, no gateway,
// etcd's logs silenced.
func Config(dataDir string, clientURL, peerURL url.URL) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "baton"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "0"
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg
}

// Start runs a server on free 127.0.0.1 ports and waits until it serves
// clients (bounded by ctx and opts.ReadyTimeout).
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	s := &Server{}
	dir := opts.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "baton-etcd-")
		if err != nil {
			return nil, fmt.Errorf("embedded: data dir: %w", err)
		}
		dir, s.tempDir = d, d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, backends.Invalid("embedded.data_dir", dir, err.Error())
	}
	clientURL, err := freeURL()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	peerURL, err := freeURL()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	e, err := embed.StartEtcd(Config(dir, clientURL, peerURL))
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("embedded: start etcd in %s: %w", dir, err)
	}
	s.etcd = e
	timer := time.NewTimer(opts.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		s.Close()
		return nil, fmt.Errorf("embedded: etcd failed: %w", err)
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("embedded: waiting for etcd: %w", ctx.Err())
	case <-timer.C:
		s.Close()
		return nil, backends.Unavailable("embedded: etcd not ready", fmt.Errorf("after %s", opts.ReadyTimeout))
	}
	s.endpoints = []string{clientURL.Host}
	opts.Logger.Info("baton: embedded etcd started", "endpoint", clientURL.Host, "data_dir", dir)
	return s, nil
}

// Endpoints returns the client endpoints ("127.0.0.1:port").
func (s *Server) Endpoints() []string { return append([]string(nil), s.endpoints...) }

// Close stops the server and removes a temporary data directory.
func (s *Server) Close() error {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
	return s.cleanup()
}

func (s *Server) cleanup() error {
	if s.tempDir != "" {
		dir := s.tempDir
		s.tempDir = ""
		return os.RemoveAll(dir)
	}
	return nil
}

// Option makes runtime.New use this package for the embedded default.
func Option() runtime.Option {
	return nodeaccess.WithEmbeddedEtcd(func(ctx context.Context, dataDir string, logger *slog.Logger) (nodeaccess.EmbeddedServer, error) {
		s, err := Start(ctx, Options{DataDir: dataDir, Logger: logger})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}).(runtime.Option)
}

func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, fmt.Errorf("embedded: free port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return url.URL{Scheme: "http", Host: addr}, nil
}
