package harness

import (
	"errors"
	"fmt"
	"os"
)

// reporter is the part of testing.TB that a running server uses to report a failed Stop, Start
// or cleanup. Servers started by the Start* functions report to their test; servers started by
// the Launch* functions, which have no test, panic instead (see panicReporter).
type reporter interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// panicReporter is the reporter of a launched server. A program has no test to fail, and a
// Stop or Start that failed leaves the server in a state the caller did not ask for, so
// carrying on silently would be worse than stopping.
type panicReporter struct{}

func (panicReporter) Helper() {}

func (panicReporter) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (panicReporter) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// LaunchRedis is StartRedis for programs (benchmarks, tools) that have no testing.TB: it starts
// redis-server on a free 127.0.0.1 port with its working dir and log file in a new temp dir and
// waits until it answers. The caller must call Close, which kills the server and removes the
// dir; if the program dies first, the kernel kills the server (Linux). It always uses a local
// process: BATON_TEST_CONTAINERS is for tests.
//
// Stop, Start and Restart work as for a test's server, but panic where a test would fail.
func LaunchRedis(opts ...RedisOption) (*Redis, error) {
	cfg, err := newRedisConfig(opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-redis-")
	if err != nil {
		return nil, fmt.Errorf("harness: redis: %w", err)
	}
	r := &Redis{t: panicReporter{}, cfg: cfg, dir: dir}
	if err := r.launch(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// Close kills the server, waits until its port refuses connections and removes its temp dir.
// It is meant for servers from LaunchRedis (a test's server is closed by its cleanup); calling
// it again does nothing.
func (r *Redis) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.stopLocked()
	err = errors.Join(err, os.RemoveAll(r.dir))
	if err != nil {
		return fmt.Errorf("harness: redis close: %w", err)
	}
	return nil
}

// LaunchEtcd is StartEtcd for programs that have no testing.TB: an embedded etcd server in this
// process, on free 127.0.0.1 ports, with its data in a new temp dir. The caller must call Close.
//
// Stop, Start, Restart and Wipe work as for a test's server, but panic where a test would fail.
func LaunchEtcd(opts ...EtcdOption) (*Etcd, error) {
	return launchEtcd("", opts)
}

// LaunchEtcdProcess is StartEtcdProcess for programs that have no testing.TB: etcd in a
// separate OS process (the helper command integration/cmd/etcd-server, built with `go build`
// on first use, so the program must run inside the module). Keeping the server out of the
// program's process keeps its CPU time, goroutines and allocations out of the program's own
// measurements. The caller must call Close; if the program dies first, the kernel kills the
// server (Linux).
func LaunchEtcdProcess(opts ...EtcdOption) (*Etcd, error) {
	bin, err := etcdServerBinary()
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	return launchEtcd(bin, opts)
}

func launchEtcd(binary string, opts []EtcdOption) (*Etcd, error) {
	dir, err := os.MkdirTemp("", "baton-etcd-")
	if err != nil {
		return nil, fmt.Errorf("harness: etcd: %w", err)
	}
	e := newEtcd(panicReporter{}, binary, dir, opts)
	if err := e.launch(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

// Close stops the server (as Stop does), waits until its ports refuse connections and removes
// its temp dir, data included. It is meant for servers from LaunchEtcd and LaunchEtcdProcess;
// calling it again does nothing.
func (e *Etcd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.stopLocked()
	err = errors.Join(err, os.RemoveAll(e.dir))
	if err != nil {
		return fmt.Errorf("harness: etcd close: %w", err)
	}
	return nil
}
