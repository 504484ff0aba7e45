//go:build reliability

package reliability_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/linearize"
)

// The config scenario's checkers must reject what a broken config center
// does. These tests run the scenario's clients, without faults, against
// the node facade wrapped in a deliberately broken layer, and require a
// violation. They are not TestReliability* scenarios: they report nothing.

// checkerRun is a short fault-free run on Redis with the clients calling
// wrapCalls(facade) and the watcher watching wrapWatch(facade).
func checkerRun(t *testing.T, wrapCalls, wrapWatch func(backends.ConfigCenter) backends.ConfigCenter) configOutcome {
	srv := harness.StartRedis(t)
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{srv.Addr()}
	tg := configTarget{backend: backends.BackendRedis}
	tg.spec.Redis = &cfg
	tg.spec.Env = "rel-checker"
	facade := startConfigNode(t, tg)
	r := newConfigRun(t, wrapCalls(facade), wrapWatch(facade))
	// A broken watcher may never reach the final state.
	r.catchUp = 2 * time.Second
	r.start()
	r.until(2 * time.Second)
	return r.finish()
}

func unchanged(c backends.ConfigCenter) backends.ConfigCenter { return c }

// TestCheckerCatchesStaleReads: a read cache that is not invalidated by
// writes serves values that acknowledged writes replaced; porcupine must
// find no linearization.
func TestCheckerCatchesStaleReads(t *testing.T) {
	out := checkerRun(t, func(c backends.ConfigCenter) backends.ConfigCenter {
		return &staleReads{ConfigCenter: c, ttl: 100 * time.Millisecond, cached: map[string]cachedItem{}}
	}, unchanged)
	assert.Equal(t, porcupine.Illegal, out.lin.Verdict)
	assert.Positive(t, out.lost())
}

// TestCheckerCatchesMissedEvents: a watch that drops every fourth Put
// without a resync; the watch checker must report the writes it missed.
func TestCheckerCatchesMissedEvents(t *testing.T) {
	out := checkerRun(t, unchanged, func(c backends.ConfigCenter) backends.ConfigCenter {
		return &droppingWatch{ConfigCenter: c, every: 4}
	})
	assert.Equal(t, porcupine.Ok, out.lin.Verdict, "the calls themselves were not broken")
	missed := 0
	for _, v := range out.watch {
		if v.Kind == linearize.Missed {
			missed++
		}
	}
	assert.Positive(t, missed)
}

// staleReads answers GetItem from a cache filled by reads and kept for ttl,
// whatever was written meanwhile.
type staleReads struct {
	backends.ConfigCenter
	ttl time.Duration

	mu     sync.Mutex
	cached map[string]cachedItem
}

type cachedItem struct {
	item backends.ConfigItem
	at   time.Time
}

func (s *staleReads) GetItem(ctx context.Context, key string) (backends.ConfigItem, error) {
	s.mu.Lock()
	c, ok := s.cached[key]
	s.mu.Unlock()
	if ok && time.Since(c.at) < s.ttl {
		return c.item, nil
	}
	it, err := s.ConfigCenter.GetItem(ctx, key)
	if err == nil {
		s.mu.Lock()
		s.cached[key] = cachedItem{item: it, at: time.Now()}
		s.mu.Unlock()
	}
	return it, err
}

// droppingWatch passes on a watch's events but drops every n-th Put.
type droppingWatch struct {
	backends.ConfigCenter
	every int
}

func (d *droppingWatch) WatchWith(ctx context.Context, key string, opts backends.WatchOptions) (<-chan backends.ConfigEvent, error) {
	in, err := d.ConfigCenter.WatchWith(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	out := make(chan backends.ConfigEvent)
	go func() {
		defer close(out)
		puts := 0
		for ev := range in {
			if ev.Type == backends.ConfigPut {
				if puts++; puts%d.every == 0 {
					continue
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				// Drain, so that the inner watch can close its channel.
				for range in {
				}
				return
			}
		}
	}()
	return out, nil
}
