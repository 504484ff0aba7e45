package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime"
)

// outage keeps a killed server down for d: the length of the fault, not a
// wait for something to happen.
func outage(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
}

// TestRecoveryAfterServerRestart kills the server under a node with the
// default connector settings, keeps it down long enough for the
// connector's retry delays to grow, starts it again and measures how long
// each component takes to serve again. The connector probes a lost backend
// at least once per health interval (1s by default), so every component is
// back within about that.
func TestRecoveryAfterServerRestart(t *testing.T) {
	for _, backend := range []string{backends.BackendEtcd, backends.BackendRedis} {
		t.Run(backend, func(t *testing.T) {
			var cfg runtime.Spec
			var stop, start func()
			if backend == backends.BackendEtcd {
				e := harness.StartEtcdProcess(t)
				cfg.Etcd, stop, start = etcdConfig(e), e.Stop, e.Start
			} else {
				r := harness.StartRedis(t)
				cfg.Redis, stop, start = redisConfig(r), r.Stop, r.Start
			}
			cfg.Env, cfg.NodeID = "test", "recovery-"+backend
			node := startNode(t, cfg)
			ctx := ctxFor(t, 60*time.Second)
			calls := map[string]func(ctx context.Context) error{
				"cache": func(ctx context.Context) error { return node.Cache("c").Set(ctx, "k", []byte("v"), 0) },
				"config": func(ctx context.Context) error {
					_, err := node.Config().Get(ctx, "k")
					if errors.Is(err, backends.ErrNotFound) {
						return nil
					}
					return err
				},
				"lock": func(ctx context.Context) error {
					l, err := node.Locks().TryAcquire(ctx, "recovery", backends.LockOptions{TTL: 5 * time.Second})
					if err != nil {
						return err
					}
					return l.Release(ctx)
				},
				"discovery": func(ctx context.Context) error {
					_, err := node.Discovery().Discover(ctx, "nobody")
					return err
				},
			}
			for name, call := range calls {
				require.NoError(t, call(ctx), name)
			}

			stop()
			require.Eventually(t, func() bool {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				return errors.Is(calls["cache"](cctx), backends.ErrUnavailable)
			}, 10*time.Second, 20*time.Millisecond, "the node notices the loss")
			outage(t, 8*time.Second)
			restarted := time.Now()
			start()
			ready := time.Since(restarted) // the server's own start-up

			type result struct {
				name string
				took time.Duration
			}
			results := make(chan result, len(calls))
			for name, call := range calls {
				go func() {
					for ctx.Err() == nil {
						cctx, cancel := context.WithTimeout(ctx, time.Second)
						err := call(cctx)
						cancel()
						if err == nil {
							results <- result{name, time.Since(restarted)}
							return
						}
						select {
						case <-time.After(10 * time.Millisecond):
						case <-ctx.Done():
						}
					}
					results <- result{name, -1}
				}()
			}
			for range calls {
				r := <-results
				t.Logf("%s %s: first success %v after the restart (the server answered after %v)",
					backend, r.name, r.took.Round(time.Millisecond), ready.Round(time.Millisecond))
				require.Positive(t, r.took, "%s never recovered", r.name)
				assert.Less(t, r.took-ready, 2500*time.Millisecond, "%s recovers within about one health interval", r.name)
			}
		})
	}
}
