// Command etcd-server runs a single-member etcd server (go.etcd.io/etcd/server/v3/embed) as its
// own OS process, so that tests can kill it with SIGKILL and start it again on the same ports and
// data directory. It is built and launched by the integration/harness package
// (harness.StartEtcdProcess); it is not meant to be run by hand, although it can be:
//
//	go run ./integration/cmd/etcd-server -data-dir /tmp/e \
//	    -listen-client http://127.0.0.1:23790 -listen-peer http://127.0.0.1:23800
//
// It prints the single line "ready" on stdout once the server serves clients, logs to stderr at
// the level given by -log-level, and exits after closing the server on SIGTERM or SIGINT.
// Auto compaction is off: history is only compacted when a client asks for it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-server: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		name          = flag.String("name", "baton", "member name")
		dataDir       = flag.String("data-dir", "", "data directory (required)")
		listenClient  = flag.String("listen-client", "", "client URL to listen on and advertise, e.g. http://127.0.0.1:2379 (required)")
		listenPeer    = flag.String("listen-peer", "", "peer URL to listen on and advertise, e.g. http://127.0.0.1:2380 (required)")
		snapshotCount = flag.Uint64("snapshot-count", 0, "committed transactions that trigger a snapshot; 0 keeps the etcd default")
		logLevel      = flag.String("log-level", "error", "zap log level: debug, info, warn, error")
	)
	flag.Parse()
	if *dataDir == "" || *listenClient == "" || *listenPeer == "" {
		flag.Usage()
		return fmt.Errorf("-data-dir, -listen-client and -listen-peer are required")
	}
	clientURL, err := url.Parse(*listenClient)
	if err != nil {
		return fmt.Errorf("parse -listen-client: %w", err)
	}
	peerURL, err := url.Parse(*listenPeer)
	if err != nil {
		return fmt.Errorf("parse -listen-peer: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "0" // off
	cfg.EnableGRPCGateway = false
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{embed.StdErrLogOutput}
	if *snapshotCount > 0 {
		cfg.SnapshotCount = *snapshotCount
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case err := <-e.Err():
		return fmt.Errorf("serve: %w", err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("server stopped before it was ready")
	case <-ctx.Done():
		return nil
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serve: %w", err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("server stopped")
	}
}
