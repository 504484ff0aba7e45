package harness

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// containersEnv is the environment variable that asks for the testcontainers provider.
const containersEnv = "BATON_TEST_CONTAINERS"

// The providers that start servers.
const (
	// providerLocal runs servers as processes on this machine (embedded etcd: in this process).
	// It is the default and what CI uses.
	providerLocal = "local"
	// providerContainers runs servers in Docker containers through testcontainers-go. It is
	// compiled in only with the containers build tag (see containers.go).
	providerContainers = "containers"
)

// dockerProbeTimeout bounds the check for a Docker engine, so that a dead DOCKER_HOST costs a
// test run seconds, not minutes.
const dockerProbeTimeout = 5 * time.Second

// providerChoice is the provider to use and, when containers were asked for but local
// processes are used, why.
type providerChoice struct {
	name   string // providerLocal or providerContainers
	reason string // empty unless BATON_TEST_CONTAINERS=1 could not be honoured
}

// chooseProvider decides which provider starts servers. env is the value of
// BATON_TEST_CONTAINERS, compiled tells whether this build has the containers provider, and
// probe reports whether a Docker engine answers (nil) or why not. It has no other inputs, so
// tests can drive every branch; probe runs only when its answer matters.
func chooseProvider(env string, compiled bool, probe func() error) providerChoice {
	if env != "1" {
		return providerChoice{name: providerLocal}
	}
	if !compiled {
		return providerChoice{
			name: providerLocal,
			reason: fmt.Sprintf("%s=1, but the harness was built without the containers build tag "+
				"(run `%s=1 go test -tags containers ./...`); using local processes", containersEnv, containersEnv),
		}
	}
	if err := probe(); err != nil {
		return providerChoice{
			name:   providerLocal,
			reason: fmt.Sprintf("%s=1, but no Docker engine answered: %v; using local processes", containersEnv, err),
		}
	}
	return providerChoice{name: providerContainers}
}

// dockerAnswers probes for a Docker engine once per test binary: the answer does not change
// during a run, and a probe that times out would otherwise cost every test its timeout.
var dockerAnswers = sync.OnceValue(func() error {
	return probeWithin(dockerProbeTimeout, probeDocker)
})

// probeWithin runs probe with a context that expires after timeout, and says so when that is
// why it failed.
func probeWithin(timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := probe(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %v: %w", timeout, err)
		}
		return err
	}
	return nil
}

// provider returns the provider that starts the servers of t: providerContainers when
// BATON_TEST_CONTAINERS=1, the build has the containers tag and a Docker engine answers,
// otherwise providerLocal. When containers were asked for but cannot be used, it says why in
// the test log; without BATON_TEST_CONTAINERS it says nothing.
func provider(t testing.TB) string {
	t.Helper()
	c := chooseProvider(os.Getenv(containersEnv), containersCompiled, dockerAnswers)
	if c.reason != "" {
		t.Logf("harness: %s", c.reason)
	}
	return c.name
}

// containerServer is a server run by the containers provider. A Redis or Etcd whose ctr is set
// hands its lifecycle to it instead of managing a local process. Callers hold the server's
// mutex.
type containerServer interface {
	// start starts the server on its host ports and waits until it serves clients; it does
	// nothing when the server runs.
	start() error
	// stop stops the server and waits until its host ports refuse connections; data survives
	// (etcd) unless the server has none (Redis). It does nothing when the server is stopped.
	stop() error
	// wipe stops the server and deletes its data, so that the next start begins empty.
	wipe() error
}
