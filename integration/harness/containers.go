//go:build containers

package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// containersCompiled tells provider that this build has the containers provider.
const containersCompiled = true

// Images, overridable so that a machine with a registry mirror or a pinned digest can use its
// own. The etcd default is the release of the server module in go.mod, the one the local
// provider embeds, so both providers run the same etcd.
const (
	redisImageEnv     = "BATON_TEST_REDIS_IMAGE"
	etcdImageEnv      = "BATON_TEST_ETCD_IMAGE"
	defaultRedisImage = "redis:7"
	defaultEtcdImage  = "gcr.io/etcd-development/etcd:v3.7.3"
)

const (
	// containerCreateTimeout bounds creating and starting a container, which includes pulling
	// its image the first time.
	containerCreateTimeout = 5 * time.Minute
	// containerStopTimeout is how long a graceful stop (SIGTERM) may take before Docker sends
	// SIGKILL.
	containerStopTimeout = 10 * time.Second
	// dockerCallTimeout bounds the other Docker API calls (stop, state, logs, remove).
	dockerCallTimeout = time.Minute
)

// Fixed ports inside the containers; the host ports vary.
const (
	redisContainerPort = "6379/tcp"
	etcdContainerPort  = "2379/tcp"
)

var quietOnce sync.Once

// quietTestcontainers sends testcontainers-go's process-wide log (the engine banner, the
// reaper) nowhere: the harness prints nothing by default. Per-container lifecycle messages go
// to the test log instead (see dockerServer.request).
func quietTestcontainers() {
	quietOnce.Do(func() { tclog.SetDefault(tclog.NewNoopLogger()) })
}

// probeDocker reports whether a Docker engine answers. It is the provider health check of
// testcontainers-go (an Info call on its client), made here on a client built with ctx:
// ProviderDefault.GetProvider connects without a context, so it could hang on an engine that
// accepts connections but never answers. testcontainers caches the engine it finds, so later
// containers reuse this discovery.
func probeDocker(ctx context.Context) error {
	quietTestcontainers()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Info(ctx, client.InfoOptions{}); err != nil {
		return err
	}
	return nil
}

// containerSpec describes one kind of server container.
type containerSpec struct {
	what         string // "redis" or "etcd", for messages
	image        string
	port         string                      // the container port that is published
	cmd          func(hostPort int) []string // the command line, given the published host port
	kill         bool                        // stop with SIGKILL rather than SIGTERM
	ready        func(addr string) bool      // whether the server on addr serves clients
	readyTimeout time.Duration
}

// dockerServer is a server in a Docker container whose port is published on a fixed
// 127.0.0.1 host port. Docker keeps the binding when the container stops, so a restarted
// server has the same address, as a local process does. Stop and start keep the container
// (and so its file system: etcd keeps its data); wipe removes it, and the next start creates
// a new one on the same port.
type dockerServer struct {
	t        testing.TB
	spec     containerSpec
	hostPort int

	ctr testcontainers.Container // nil before the first start and after wipe
	up  bool
}

var _ containerServer = (*dockerServer)(nil)

// launchContainer creates and starts the first container of a server on a free host port. If
// another process takes the port before Docker binds it, it tries again with a fresh one.
func launchContainer(t testing.TB, spec containerSpec) (*dockerServer, error) {
	quietTestcontainers()
	var err error
	for range startAttempts {
		ports, perr := freePorts(1)
		if perr != nil {
			return nil, fmt.Errorf("harness: %s container: %w", spec.what, perr)
		}
		s := &dockerServer{t: t, spec: spec, hostPort: ports[0]}
		if err = s.start(); err == nil {
			return s, nil
		}
		if rerr := s.remove(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if !isPortConflict(err) {
			break
		}
	}
	return nil, fmt.Errorf("harness: %s container: %w", spec.what, err)
}

// isPortConflict reports whether Docker refused a start because the host port was taken.
func isPortConflict(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}

func (s *dockerServer) addr() string { return loopback(s.hostPort) }

// request describes the container: the spec's command, the one port published on
// 127.0.0.1:hostPort only, and no wait strategy (start waits with spec.ready instead, on every
// start, not only the first).
func (s *dockerServer) request() testcontainers.GenericContainerRequest {
	port := network.MustParsePort(s.spec.port)
	binding := network.PortBinding{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(s.hostPort)}
	return testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        s.spec.image,
			Cmd:          s.spec.cmd(s.hostPort),
			ExposedPorts: []string{s.spec.port},
			Labels:       map[string]string{"dev.baton-go.harness": s.spec.what},
			ConfigModifier: func(cfg *container.Config) {
				if s.spec.kill {
					cfg.StopSignal = "SIGKILL"
				}
			},
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.PortBindings = network.PortMap{port: {binding}}
			},
		},
		Started: true,
		Logger:  tclog.TestLogger(s.t),
	}
}

func (s *dockerServer) start() error {
	if s.up {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerCreateTimeout)
	defer cancel()
	if s.ctr == nil {
		ctr, err := testcontainers.GenericContainer(ctx, s.request())
		if ctr != nil {
			s.ctr = ctr // even on error, so that remove deletes what was created
		}
		if err != nil {
			return fmt.Errorf("%s container (%s) on %s: %w", s.spec.what, s.spec.image, s.addr(), err)
		}
	} else if err := s.ctr.Start(ctx); err != nil {
		return fmt.Errorf("%s container on %s: %w", s.spec.what, s.addr(), err)
	}
	s.up = true

	err := poll(s.spec.readyTimeout, 20*time.Millisecond, func() (bool, error) {
		if s.spec.ready(s.addr()) {
			return true, nil
		}
		if state, err := s.state(); err != nil {
			return false, err
		} else if !state.Running {
			return false, fmt.Errorf("exited with code %d", state.ExitCode)
		}
		return false, nil
	})
	if err != nil {
		logs := s.logTail()
		if serr := s.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return fmt.Errorf("%s container on %s not ready: %w%s", s.spec.what, s.addr(), err, logs)
	}
	return nil
}

func (s *dockerServer) stop() error {
	if !s.up {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	timeout := containerStopTimeout
	if err := s.ctr.Stop(ctx, &timeout); err != nil {
		return fmt.Errorf("%s container on %s: %w", s.spec.what, s.addr(), err)
	}
	s.up = false
	return waitRefused(s.addr(), s.spec.readyTimeout)
}

func (s *dockerServer) wipe() error {
	if err := s.stop(); err != nil {
		return err
	}
	return s.remove()
}

// remove deletes the container and its anonymous volumes, running or not.
func (s *dockerServer) remove() error {
	if s.ctr == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	err := s.ctr.Terminate(ctx)
	s.ctr, s.up = nil, false
	if err != nil {
		return fmt.Errorf("remove %s container on %s: %w", s.spec.what, s.addr(), err)
	}
	return nil
}

// terminate is the cleanup: it removes the container and waits until its port is free.
func (s *dockerServer) terminate() error {
	if err := s.remove(); err != nil {
		return err
	}
	return waitRefused(s.addr(), s.spec.readyTimeout)
}

func (s *dockerServer) state() (*container.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	return s.ctr.State(ctx)
}

// logTail returns the end of the container's output, for failure messages.
func (s *dockerServer) logTail() string {
	const max = 4 << 10
	if s.ctr == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	rc, err := s.ctr.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("\n(container logs: %v)", err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	if len(data) > max {
		data = data[len(data)-max:]
	}
	if len(data) == 0 {
		return "\n(no container output)"
	}
	return fmt.Sprintf("\n--- tail of the %s container's output ---\n%s", s.spec.what, strings.TrimRight(string(data), "\n"))
}

func imageFromEnv(env, fallback string) string {
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		return v
	}
	return fallback
}

// startRedisContainer is StartRedis for the containers provider: redis-server in a container
// with no persistence, killed (SIGKILL) by Stop like the local process. WithRedisArgs applies;
// WithRedisBinary has no meaning for an image and is ignored, with a note in the test log.
func startRedisContainer(t testing.TB, opts []RedisOption) *Redis {
	t.Helper()
	var cfg redisConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.binary != "" {
		t.Logf("harness: the containers provider runs %s; WithRedisBinary(%q) is ignored", imageFromEnv(redisImageEnv, defaultRedisImage), cfg.binary)
	}
	spec := containerSpec{
		what:  "redis",
		image: imageFromEnv(redisImageEnv, defaultRedisImage),
		port:  redisContainerPort,
		cmd: func(int) []string {
			return append([]string{
				"redis-server",
				"--port", "6379",
				"--save", "",
				"--appendonly", "no",
				"--protected-mode", "no", // clients come through Docker's port mapping, not loopback
			}, cfg.args...)
		},
		kill: true,
		ready: func(addr string) bool {
			reply, err := redisCommand(addr, cfg.password, "PING")
			return err == nil && reply == "PONG"
		},
		readyTimeout: redisReadyTimeout,
	}
	srv, err := launchContainer(t, spec)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r := &Redis{t: t, cfg: cfg, dir: t.TempDir(), port: srv.hostPort, ctr: srv}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := srv.terminate(); err != nil {
			t.Errorf("harness: redis cleanup: %v", err)
		}
	})
	return r
}

// startEtcdContainer is StartEtcd (kill false: Stop is a graceful SIGTERM) or
// StartEtcdProcess (kill true: Stop is SIGKILL) for the containers provider: a single-member
// etcd whose data lives in the container, so it survives Stop and Start and goes with Wipe.
func startEtcdContainer(t testing.TB, kill bool, opts []EtcdOption) *Etcd {
	t.Helper()
	var cfg etcdConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	spec := containerSpec{
		what:  "etcd",
		image: imageFromEnv(etcdImageEnv, defaultEtcdImage),
		port:  etcdContainerPort,
		cmd: func(hostPort int) []string {
			args := []string{
				"/usr/local/bin/etcd",
				"--name", "baton",
				"--data-dir", "/var/lib/etcd/baton",
				"--listen-client-urls", "http://0.0.0.0:2379",
				// Advertise the address clients use, the published one.
				"--advertise-client-urls", "http://" + loopback(hostPort),
				// The peer port stays inside the container: a single member never dials it.
				"--listen-peer-urls", "http://127.0.0.1:2380",
				"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
				"--initial-cluster", "baton=http://127.0.0.1:2380",
				"--enable-grpc-gateway=false",
				"--log-level", etcdLogLevel,
			}
			if cfg.snapshotCount > 0 {
				args = append(args, "--snapshot-count", strconv.FormatUint(cfg.snapshotCount, 10))
			}
			return args
		},
		kill:         kill,
		ready:        etcdHealthy,
		readyTimeout: etcdReadyTimeout,
	}
	srv, err := launchContainer(t, spec)
	if err != nil {
		t.Fatalf("%v", err)
	}
	e := &Etcd{t: t, cfg: cfg, inProcess: !kill, dir: t.TempDir(), clientPort: srv.hostPort, ctr: srv}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := srv.terminate(); err != nil {
			t.Errorf("harness: etcd cleanup: %v", err)
		}
	})
	return e
}

// etcdHealthy asks etcd's /health endpoint, which answers true once the member has a leader
// and serves reads. Keep-alives are off so that no connection (and goroutine) outlives the call.
func etcdHealthy(addr string) bool {
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`)
}
