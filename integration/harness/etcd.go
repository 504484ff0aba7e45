package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdReadyTimeout bounds the wait for a started etcd to serve clients.
const etcdReadyTimeout = 30 * time.Second

// etcdLogLevel is the level of the server log written to the temp dir.
const etcdLogLevel = "warn"

// EtcdOption configures StartEtcd and StartEtcdProcess.
type EtcdOption func(*etcdConfig)

type etcdConfig struct {
	snapshotCount uint64 // default: 0, meaning etcd's own default (10000)
}

// WithSnapshotCount sets how many committed transactions trigger a raft snapshot (etcd's
// --snapshot-count). Small values exercise snapshot and WAL-replay paths on restart.
func WithSnapshotCount(n uint64) EtcdOption {
	return func(c *etcdConfig) { c.snapshotCount = n }
}

// Etcd is a single-member etcd cluster on loopback ports, owned by one test: either embedded in
// the test process (StartEtcd) or a separate OS process (StartEtcdProcess).
type Etcd struct {
	t         reporter
	cfg       etcdConfig
	inProcess bool
	dir       string // temp dir: logs, and the data dir below
	dataDir   string
	binary    string // helper binary; StartEtcdProcess only

	clientPort, peerPort int

	mu       sync.Mutex
	embedded *embed.Etcd // StartEtcd, nil while stopped
	logFile  *os.File    // the embedded server's log, open while it runs
	proc     *process    // StartEtcdProcess, nil while stopped
	lastExit *os.ProcessState
	ctr      containerServer // the containers provider's server; nil for local servers
}

// StartEtcd starts an etcd server inside the test process (go.etcd.io/etcd/server/v3/embed)
// on free 127.0.0.1 ports with its data dir in t.TempDir(), waits until it is ready to serve
// clients, and registers a cleanup that closes it. Stop closes the server gracefully; use
// StartEtcdProcess to crash it instead.
func StartEtcd(t testing.TB, opts ...EtcdOption) *Etcd {
	t.Helper()
	if provider(t) == providerContainers {
		return startEtcdContainer(t, false, opts)
	}
	return startEtcd(t, "", opts)
}

// StartEtcdProcess is StartEtcd with the server in a separate OS process, the helper command
// integration/cmd/etcd-server (built once per test binary). Stop sends it SIGKILL, which is
// what fault tests want: kill -9 the member, then Start it on the same ports and data dir.
func StartEtcdProcess(t testing.TB, opts ...EtcdOption) *Etcd {
	t.Helper()
	if provider(t) == providerContainers {
		return startEtcdContainer(t, true, opts)
	}
	bin, err := etcdServerBinary()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return startEtcd(t, bin, opts)
}

// startEtcd starts the helper binary, or an embedded server if binary is "".
func startEtcd(t testing.TB, binary string, opts []EtcdOption) *Etcd {
	t.Helper()
	e := newEtcd(t, binary, t.TempDir(), opts)
	t.Cleanup(e.cleanup)
	if err := e.launch(); err != nil {
		t.Fatalf("%v", err)
	}
	return e
}

// newEtcd returns a stopped server that keeps its logs and data under dir.
func newEtcd(t reporter, binary, dir string, opts []EtcdOption) *Etcd {
	var cfg etcdConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	return &Etcd{
		t:         t,
		cfg:       cfg,
		inProcess: binary == "",
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		binary:    binary,
	}
}

// launch is the first start: it tries fresh ports a few times, since another process may take
// a port between freePorts and the server's bind.
func (e *Etcd) launch() error {
	var err error
	for range startAttempts {
		ports, perr := freePorts(2)
		if perr != nil {
			return fmt.Errorf("harness: etcd: %w", perr)
		}
		e.clientPort, e.peerPort = ports[0], ports[1]
		e.mu.Lock()
		err = e.startLocked()
		e.mu.Unlock()
		if err == nil {
			return nil
		}
		// A first start that failed may have left a half-initialised data dir behind.
		_ = os.RemoveAll(e.dataDir)
	}
	return fmt.Errorf("harness: etcd: %w", err)
}

// Endpoints returns the client endpoint as "127.0.0.1:port", the form clientv3.Config.Endpoints
// accepts (plain HTTP, no TLS).
func (e *Etcd) Endpoints() []string { return []string{loopback(e.clientPort)} }

// Stop stops the server and waits until its client port refuses connections: a graceful Close
// for StartEtcd, SIGKILL for StartEtcdProcess. The data dir is kept. Stop on a stopped server
// does nothing.
func (e *Etcd) Stop() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.stopLocked(); err != nil {
		e.t.Fatalf("harness: etcd stop: %v", err)
	}
}

// Start starts the server again on the same ports and data dir (so with the same data, unless
// Wipe ran) and waits until it serves clients. Start on a running server does nothing.
func (e *Etcd) Start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running() {
		return
	}
	if err := e.startLocked(); err != nil {
		e.t.Fatalf("harness: etcd start: %v", err)
	}
}

// Restart is Stop then Start: same ports, same data.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.Stop()
	e.Start()
}

// Wipe stops the server and deletes its data dir, so that the next Start begins with an empty
// store (a new cluster: new cluster ID, revisions from 1). It does not start the server.
func (e *Etcd) Wipe() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctr != nil {
		if err := e.ctr.wipe(); err != nil {
			e.t.Fatalf("harness: etcd wipe: %v", err)
		}
		return
	}
	if err := e.stopLocked(); err != nil {
		e.t.Fatalf("harness: etcd wipe: %v", err)
	}
	if err := os.RemoveAll(e.dataDir); err != nil {
		e.t.Fatalf("harness: etcd wipe: %v", err)
	}
}

// CompactNow compacts the key-value history up to the current revision (physically, so it has
// taken effect when CompactNow returns). Afterwards a watch or Get at an older revision fails
// with rpctypes.ErrCompacted, which is how tests provoke a watch gap. Failures are reported on t.
func (e *Etcd) CompactNow(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), etcdReadyTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("harness: etcd compact: %v", err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("harness: etcd compact: read revision: %v", err)
	}
	_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) { // already compacted that far
		t.Fatalf("harness: etcd compact to revision %d: %v", resp.Header.Revision, err)
	}
}

func (e *Etcd) running() bool { return e.embedded != nil || e.proc != nil }

func (e *Etcd) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.stopLocked(); err != nil {
		e.t.Errorf("harness: etcd cleanup: %v", err)
	}
}

func (e *Etcd) logPath() string    { return filepath.Join(e.dir, "etcd.log") }
func (e *Etcd) stdoutPath() string { return filepath.Join(e.dir, "etcd.out") }

func (e *Etcd) clientURL() url.URL {
	return url.URL{Scheme: "http", Host: loopback(e.clientPort)}
}

func (e *Etcd) peerURL() url.URL {
	return url.URL{Scheme: "http", Host: loopback(e.peerPort)}
}

func (e *Etcd) startLocked() error {
	if e.ctr != nil {
		return e.ctr.start()
	}
	if e.inProcess {
		return e.startEmbeddedLocked()
	}
	return e.startProcessLocked()
}

func (e *Etcd) stopLocked() error {
	if e.ctr != nil {
		return e.ctr.stop()
	}
	switch {
	case e.embedded != nil:
		e.embedded.Close()
		e.embedded = nil
		_ = e.logFile.Close()
		e.logFile = nil
	case e.proc != nil:
		e.proc.kill()
		e.lastExit = e.proc.cmd.ProcessState
		e.proc = nil
	default:
		return nil
	}
	if err := waitRefused(loopback(e.clientPort), etcdReadyTimeout); err != nil {
		return err
	}
	return waitRefused(loopback(e.peerPort), etcdReadyTimeout)
}

// startEmbeddedLocked starts an embed.Etcd. A fresh embed.Config is built on every start: a
// Config carries the logger and other state of the server it started.
func (e *Etcd) startEmbeddedLocked() error {
	logFile, err := openLog(e.logPath())
	if err != nil {
		return err
	}
	lg := zap.New(
		zapcore.NewCore(
			zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
			zapcore.AddSync(logFile),
			zap.NewAtomicLevelAt(zapcore.WarnLevel),
		),
		// Write errors (e.g. a late log line after the file was closed) must not reach stderr.
		zap.ErrorOutput(zapcore.AddSync(io.Discard)),
	)

	cfg := embed.NewConfig()
	cfg.Name = "baton"
	cfg.Dir = e.dataDir
	cfg.ListenClientUrls = []url.URL{e.clientURL()}
	cfg.AdvertiseClientUrls = []url.URL{e.clientURL()}
	cfg.ListenPeerUrls = []url.URL{e.peerURL()}
	cfg.AdvertisePeerUrls = []url.URL{e.peerURL()}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "0" // off
	cfg.EnableGRPCGateway = false
	cfg.Logger = "zap"
	cfg.LogLevel = etcdLogLevel
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	if e.cfg.snapshotCount > 0 {
		cfg.SnapshotCount = e.cfg.snapshotCount
	}

	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		_ = logFile.Close()
		return fmt.Errorf("embedded etcd on %s: %w%s", e.Endpoints()[0], err, logTail(e.logPath()))
	}
	timer := time.NewTimer(etcdReadyTimeout)
	defer timer.Stop()
	select {
	case <-srv.Server.ReadyNotify():
		e.embedded, e.logFile = srv, logFile
		return nil
	case err = <-srv.Err():
	case <-timer.C:
		err = fmt.Errorf("not ready after %v", etcdReadyTimeout)
	}
	srv.Close()
	_ = logFile.Close()
	return fmt.Errorf("embedded etcd on %s: %w%s", e.Endpoints()[0], err, logTail(e.logPath()))
}

func (e *Etcd) startProcessLocked() error {
	args := []string{
		"-name", "baton",
		"-data-dir", e.dataDir,
		"-listen-client", urlString(e.clientURL()),
		"-listen-peer", urlString(e.peerURL()),
		"-log-level", etcdLogLevel,
	}
	if e.cfg.snapshotCount > 0 {
		args = append(args, "-snapshot-count", strconv.FormatUint(e.cfg.snapshotCount, 10))
	}
	// Truncate stdout so that "ready" from a previous run does not count.
	if err := os.WriteFile(e.stdoutPath(), nil, 0o644); err != nil {
		return err
	}
	p, err := startProcess(e.binary, args, e.dir, e.stdoutPath(), e.logPath())
	if err != nil {
		return err
	}
	err = poll(etcdReadyTimeout, 10*time.Millisecond, func() (bool, error) {
		out, err := os.ReadFile(e.stdoutPath())
		if err != nil {
			return false, err
		}
		if strings.HasPrefix(string(out), "ready\n") {
			return true, nil
		}
		if p.exited() {
			return false, fmt.Errorf("exited: %v", p.err)
		}
		return false, nil
	})
	if err != nil {
		p.kill()
		return fmt.Errorf("etcd-server process on %s not ready: %w%s", e.Endpoints()[0], err, logTail(e.stdoutPath(), e.logPath()))
	}
	e.proc = p
	return nil
}

func urlString(u url.URL) string { return u.String() }
