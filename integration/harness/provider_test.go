package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logRecorder keeps what the harness logs on a test, and still logs it there.
type logRecorder struct {
	testing.TB
	mu   sync.Mutex
	logs []string
}

func (l *logRecorder) Logf(format string, args ...any) {
	l.TB.Helper()
	l.mu.Lock()
	l.logs = append(l.logs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
	l.TB.Logf(format, args...)
}

func (l *logRecorder) joined() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.logs, "\n")
}

func TestChooseProvider(t *testing.T) {
	noEngine := errors.New("socket not found")
	tests := []struct {
		name       string
		env        string
		compiled   bool
		probeErr   error
		want       string
		wantProbe  bool     // whether the Docker probe must run
		wantReason []string // substrings of the logged reason; none means silent
	}{
		{name: "unset", env: "", compiled: true, want: providerLocal},
		{name: "unset without tag", env: "", compiled: false, want: providerLocal},
		{name: "zero", env: "0", compiled: true, want: providerLocal},
		{name: "not exactly one", env: "true", compiled: true, want: providerLocal},
		{
			name: "without tag", env: "1", compiled: false, want: providerLocal,
			wantReason: []string{"BATON_TEST_CONTAINERS=1", "without the containers build tag", "-tags containers", "using local processes"},
		},
		{
			name: "no engine", env: "1", compiled: true, probeErr: noEngine, want: providerLocal, wantProbe: true,
			wantReason: []string{"BATON_TEST_CONTAINERS=1", "no Docker engine", "socket not found", "using local processes"},
		},
		{name: "engine answers", env: "1", compiled: true, want: providerContainers, wantProbe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probed := 0
			got := chooseProvider(tt.env, tt.compiled, func() error {
				probed++
				return tt.probeErr
			})
			assert.Equal(t, tt.want, got.name)
			if tt.wantProbe {
				assert.Equal(t, 1, probed, "probe runs once")
			} else {
				assert.Zero(t, probed, "probe runs only when its answer matters")
			}
			if len(tt.wantReason) == 0 {
				assert.Empty(t, got.reason)
			}
			for _, s := range tt.wantReason {
				assert.Contains(t, got.reason, s)
			}
		})
	}
}

func TestProbeWithinTimesOut(t *testing.T) {
	start := time.Now()
	err := probeWithin(50*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done() // an engine that never answers
		return ctx.Err()
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "no answer within 50ms")
	assert.Less(t, time.Since(start), 5*time.Second)

	assert.NoError(t, probeWithin(time.Second, func(context.Context) error { return nil }))
	failed := errors.New("connection refused")
	err = probeWithin(time.Second, func(context.Context) error { return failed })
	assert.ErrorIs(t, err, failed)
	assert.NotContains(t, err.Error(), "no answer within", "a quick refusal is not a timeout")
}

func TestProviderSilentWithoutEnv(t *testing.T) {
	t.Setenv(containersEnv, "")
	rec := &logRecorder{TB: t}
	assert.Equal(t, providerLocal, provider(rec))
	assert.Empty(t, rec.joined())
}

// TestProviderFromEnvironment checks the decision this build and machine make for
// BATON_TEST_CONTAINERS=1, and that a fallback to local processes says why.
func TestProviderFromEnvironment(t *testing.T) {
	t.Setenv(containersEnv, "1")
	rec := &logRecorder{TB: t}
	got := provider(rec)
	switch {
	case !containersCompiled:
		assert.Equal(t, providerLocal, got)
		assert.Contains(t, rec.joined(), "without the containers build tag")
	case dockerAnswers() != nil:
		assert.Equal(t, providerLocal, got)
		assert.Contains(t, rec.joined(), "no Docker engine")
		assert.Contains(t, rec.joined(), dockerAnswers().Error())
	default:
		assert.Equal(t, providerContainers, got)
		assert.Empty(t, rec.joined())
	}
}

// TestProviderLifecycle runs Redis and etcd with BATON_TEST_CONTAINERS=1: in containers where
// the build and machine allow it, in local processes otherwise. Either way the servers must
// keep the harness's Stop/Start/Restart/Wipe contract.
func TestProviderLifecycle(t *testing.T) {
	t.Setenv(containersEnv, "1")
	want := chooseProvider("1", containersCompiled, dockerAnswers).name
	t.Logf("provider: %s", want)

	t.Run("redis", func(t *testing.T) {
		rec := &logRecorder{TB: t}
		rds := StartRedis(rec)
		assert.Equal(t, want == providerContainers, rds.ctr != nil, "provider %s", want)
		addr := rds.Addr()
		assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
		client := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = client.Close() })
		ctx := t.Context()

		require.NoError(t, client.Set(ctx, "k", "v", 0).Err())
		rds.Stop()
		requireRefused(t, addr)
		rds.Stop()
		rds.Start()
		rds.Start() // no-op when running
		assert.Equal(t, addr, rds.Addr(), "same port after Start")
		assert.ErrorIs(t, client.Get(ctx, "k").Err(), redis.Nil, "data is empty after a restart")
		require.NoError(t, client.Set(ctx, "k", "v", 0).Err())
		rds.Restart()
		assert.ErrorIs(t, client.Get(ctx, "k").Err(), redis.Nil)
	})

	t.Run("etcd", func(t *testing.T) {
		rec := &logRecorder{TB: t}
		e := StartEtcd(rec)
		assert.Equal(t, want == providerContainers, e.ctr != nil, "provider %s", want)
		exerciseEtcd(t, e)
	})
}
