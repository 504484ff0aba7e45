package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisReadyTimeout bounds the wait for a started redis-server to answer.
const redisReadyTimeout = 10 * time.Second

// startAttempts is how many times a first start tries fresh ports before giving up.
const startAttempts = 3

// RedisOption configures StartRedis.
type RedisOption func(*redisConfig)

type redisConfig struct {
	binary   string   // default: redis-server found in PATH, /usr/bin or /usr/sbin
	args     []string // default: none
	password string   // default: none (no authentication)
}

// WithRedisBinary runs the redis-server at path instead of the one found in PATH.
func WithRedisBinary(path string) RedisOption {
	return func(c *redisConfig) { c.binary = path }
}

// WithRedisArgs appends command-line arguments (e.g. "--maxmemory", "1mb") after the harness's
// own; redis-server lets later arguments override earlier ones.
func WithRedisArgs(args ...string) RedisOption {
	return func(c *redisConfig) { c.args = append(c.args, args...) }
}

// WithRedisPassword makes the server require password (--requirepass) from
// every client, the harness's own readiness probe included.
func WithRedisPassword(password string) RedisOption {
	return func(c *redisConfig) {
		c.password = password
		c.args = append(c.args, "--requirepass", password)
	}
}

// WithRedisAOF turns the append-only file on with an fsync after every write
// (--appendonly yes --appendfsync always), so a server killed with SIGKILL comes back from
// Start with every write it acknowledged. Wipe deletes the file: the next Start is empty.
func WithRedisAOF() RedisOption {
	return WithRedisArgs("--appendonly", "yes", "--appendfsync", "always")
}

// Redis is a redis-server process on a loopback port, owned by one test. Without
// WithRedisAOF it has no persistence: every start begins with an empty data set.
type Redis struct {
	t    reporter
	cfg  redisConfig
	dir  string
	port int

	mu   sync.Mutex
	proc *process        // nil while stopped
	ctr  containerServer // the containers provider's server; nil for a local process
}

// StartRedis starts redis-server on a free 127.0.0.1 port with its working dir and log file in
// t.TempDir(), waits until it answers, and registers a cleanup that kills it. A missing
// redis-server binary fails the test.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	if provider(t) == providerContainers {
		return startRedisContainer(t, opts)
	}
	cfg, err := newRedisConfig(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r := &Redis{t: t, cfg: cfg, dir: t.TempDir()}
	t.Cleanup(r.kill)
	if err := r.launch(); err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// newRedisConfig applies opts and finds the redis-server binary.
func newRedisConfig(opts []RedisOption) (redisConfig, error) {
	var cfg redisConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.binary == "" {
		cfg.binary = findRedisServer()
		if cfg.binary == "" {
			return cfg, errors.New("harness: redis-server not found in PATH, /usr/bin or /usr/sbin; run `make deps` or `apt-get install -y redis-server`")
		}
	}
	if _, err := exec.LookPath(cfg.binary); err != nil {
		return cfg, fmt.Errorf("harness: redis-server %q: %w; run `make deps` or `apt-get install -y redis-server`", cfg.binary, err)
	}
	return cfg, nil
}

// launch is the first start: it tries fresh ports a few times, since another process may take
// a port between freePorts and the server's bind.
func (r *Redis) launch() error {
	var err error
	for range startAttempts {
		ports, perr := freePorts(1)
		if perr != nil {
			return fmt.Errorf("harness: redis: %w", perr)
		}
		r.port = ports[0]
		r.mu.Lock()
		err = r.startLocked()
		r.mu.Unlock()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("harness: redis: %w", err)
}

func findRedisServer() string {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server"} {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// Addr returns the server address, "127.0.0.1:port".
func (r *Redis) Addr() string { return loopback(r.port) }

// URL returns a URL for database 0 that go-redis's ParseURL accepts: "redis://127.0.0.1:port/0".
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Stop kills the server (SIGKILL) and waits until its port refuses connections. Data is lost.
// Stop on a stopped server does nothing.
func (r *Redis) Stop() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.stopLocked(); err != nil {
		r.t.Fatalf("harness: redis stop: %v", err)
	}
}

// Start starts the server again on the same port and waits until it answers. Its data is
// empty, unless WithRedisAOF kept it (and Wipe did not delete it). Start on a running server
// does nothing.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		return
	}
	if err := r.startLocked(); err != nil {
		r.t.Fatalf("harness: redis start: %v", err)
	}
}

// Restart is Stop then Start: same port and directory; empty data unless the
// server persists (WithRedisAOF).
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.Start()
}

// Wipe kills the server (as Stop does) and deletes its persistence files (the RDB snapshot
// and the append-only file), so that the next Start begins with an empty data set even with
// WithRedisAOF: a server that lost its disk. It does not start the server.
func (r *Redis) Wipe() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctr != nil {
		if err := r.ctr.wipe(); err != nil {
			r.t.Fatalf("harness: redis wipe: %v", err)
		}
		return
	}
	if err := r.stopLocked(); err != nil {
		r.t.Fatalf("harness: redis wipe: %v", err)
	}
	// Redis 7 keeps the AOF in a directory, older servers in one file.
	for _, name := range []string{"dump.rdb", "appendonlydir", "appendonly.aof"} {
		if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
			r.t.Fatalf("harness: redis wipe: %v", err)
		}
	}
}

// kill is the cleanup: it stops the server and reports, without stopping the test, if the port
// stays open.
func (r *Redis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.stopLocked(); err != nil {
		r.t.Errorf("harness: redis cleanup: %v", err)
	}
}

func (r *Redis) logPaths() []string {
	return []string{filepath.Join(r.dir, "redis.log"), filepath.Join(r.dir, "redis.out")}
}

func (r *Redis) startLocked() error {
	if r.ctr != nil {
		return r.ctr.start()
	}
	logs := r.logPaths()
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--logfile", logs[0],
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--daemonize", "no",
	}
	args = append(args, r.cfg.args...)
	p, err := startProcess(r.cfg.binary, args, r.dir, logs[1], logs[1])
	if err != nil {
		return err
	}
	// Ready means our process answers: INFO names its pid, which also rules out a different
	// server that grabbed the port first.
	want := "process_id:" + strconv.Itoa(p.pid())
	err = poll(redisReadyTimeout, 10*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("redis-server on %s exited: %v", r.Addr(), p.err)
		}
		info, err := redisCommand(r.Addr(), r.cfg.password, "INFO server")
		return err == nil && strings.Contains(info, want), nil
	})
	if err != nil {
		p.kill()
		return fmt.Errorf("redis-server on %s not ready: %w%s", r.Addr(), err, logTail(logs...))
	}
	r.proc = p
	return nil
}

func (r *Redis) stopLocked() error {
	if r.ctr != nil {
		return r.ctr.stop()
	}
	if r.proc == nil {
		return nil
	}
	r.proc.kill()
	r.proc = nil
	return waitRefused(r.Addr(), redisReadyTimeout)
}

// redisCommand sends one inline command (after AUTH password, unless password is empty) and
// returns a simple-string or bulk-string reply. It keeps the harness free of a Redis client and
// its background goroutines.
func redisCommand(addr, password, command string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	if password != "" {
		if _, err := io.WriteString(c, "AUTH "+password+"\r\n"); err != nil {
			return "", err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(line, "+OK") {
			return "", fmt.Errorf("redis: AUTH: %s", strings.TrimSpace(line))
		}
	}
	if _, err := io.WriteString(c, command+"\r\n"); err != nil {
		return "", err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis: unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("redis: unexpected reply %q", line)
	}
}
