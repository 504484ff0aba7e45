package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/baton-go/baton/backends"
)

const (
	// lockTTL is every implementation's lease; it never expires during the benchmark.
	lockTTL = 15 * time.Second
	// contendedCallers is the number of goroutines competing for one lock name.
	contendedCallers = 16
	// redislockRetry is the retry interval given to redislock, which does not retry by
	// default; a short interval is the most favourable choice for its hand-off rate.
	redislockRetry = 10 * time.Millisecond
)

// lockOps is one implementation's acquire and release of one lock name, for one worker.
type lockOps struct {
	acquire func(ctx context.Context) error
	release func(ctx context.Context) error
}

// lockRunner turns per-worker lock operations into a runner.
//
// Uncontended, an operation is acquire + release and its latency is both.
//
// Contended, the callers loop acquire → release on one name, and what counts is the lock
// passing to a different caller: ops are hand-offs (an acquisition by the caller that just
// released it is not one), and the samples are the waits of the callers that received the
// lock, plus the waits still going on when the round ends (lower bounds). Without that, an
// implementation that lets one caller re-take the lock over and over would look fast while the
// others starve.
func lockRunner(impl string, contended bool, workers func(ctx context.Context, n int) ([]lockOps, error), closeFn func(context.Context) error) *runner {
	return &runner{impl: impl, close: closeFn, run: func(ctx context.Context, callers int, d time.Duration) round {
		ops, err := workers(ctx, callers)
		if err != nil {
			return round{errs: 1, firstErr: err}
		}
		var owner atomic.Int64 // 1 + the worker that took the lock last; 0 = none yet
		var acquisitions atomic.Int64
		r := closedLoop(ctx, callers, d, contended, func(ctx context.Context, w, _ int) (time.Duration, error) {
			start := time.Now()
			if err := ops[w].acquire(ctx); err != nil {
				return time.Since(start), err
			}
			waited := time.Since(start)
			acquisitions.Add(1)
			handoff := owner.Swap(int64(w)+1) != int64(w)+1
			// Release even when the round's deadline has passed, so the next round starts free.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			defer cancel()
			if err := ops[w].release(rctx); err != nil {
				return 0, fmt.Errorf("release: %w", err)
			}
			switch {
			case !contended:
				return time.Since(start), nil
			case handoff:
				return waited, nil
			default:
				return notAnOp, nil
			}
		})
		r.acquisitions = acquisitions.Load()
		return r
	}}
}

// lockRunners returns the implementations of lock.uncontended or lock.contended on s.
func lockRunners(s *stack, scenario string) []*runner {
	contended := scenario == "lock.contended"
	name := "bench-" + map[bool]string{true: "contended", false: "uncontended"}[contended]
	var out []*runner

	// baton: the node's lock facade. Local callers queue in the lock actor (FIFO) and the
	// lock is handed over on release without polling.
	lc := s.node.Locks()
	out = append(out, lockRunner("baton", contended, func(_ context.Context, n int) ([]lockOps, error) {
		ops := make([]lockOps, n)
		for w := range ops {
			var lease backends.Lease
			ops[w] = lockOps{
				acquire: func(ctx context.Context) (err error) {
					lease, err = lc.Acquire(ctx, name+"-baton", backends.LockOptions{TTL: lockTTL})
					return err
				},
				release: func(ctx context.Context) error { return lease.Release(ctx) },
			}
		}
		return ops, nil
	}, nil))

	switch s.backend {
	case backends.BackendRedis:
		// redsync with its defaults (retry delay 50–250ms), except that it never gives up.
		rs := redsync.New(redsyncgoredis.NewPool(s.rdb))
		out = append(out, lockRunner("redsync", contended, func(_ context.Context, n int) ([]lockOps, error) {
			ops := make([]lockOps, n)
			for w := range ops {
				m := rs.NewMutex(name+"-redsync", redsync.WithExpiry(lockTTL), redsync.WithTries(math.MaxInt32))
				ops[w] = lockOps{
					acquire: m.LockContext,
					release: func(ctx context.Context) error {
						ok, err := m.UnlockContext(ctx)
						if err == nil && !ok {
							err = redsync.ErrFailed
						}
						return err
					},
				}
			}
			return ops, nil
		}, nil))

		rl := redislock.New(s.rdb)
		opts := &redislock.Options{RetryStrategy: redislock.LinearBackoff(redislockRetry)}
		out = append(out, lockRunner("redislock", contended, func(_ context.Context, n int) ([]lockOps, error) {
			ops := make([]lockOps, n)
			for w := range ops {
				var l *redislock.Lock
				ops[w] = lockOps{
					acquire: func(ctx context.Context) (err error) {
						l, err = rl.Obtain(ctx, name+"-redislock", lockTTL, opts)
						return err
					},
					release: func(ctx context.Context) error { return l.Release(ctx) },
				}
			}
			return ops, nil
		}, nil))

	default:
		// etcd's concurrency.Mutex, one session (lease) per worker, as separate processes
		// would have; sessions are made once and reused across rounds.
		var mu sync.Mutex
		var sessions []*concurrency.Session
		pfx := "/" + namespace.Prefix(backends.ComponentLock, name+"-etcd-mutex")
		out = append(out, lockRunner("etcd-mutex", contended, func(ctx context.Context, n int) ([]lockOps, error) {
			mu.Lock()
			defer mu.Unlock()
			for len(sessions) < n {
				sess, err := concurrency.NewSession(s.etcd, concurrency.WithTTL(int(lockTTL/time.Second)), concurrency.WithContext(context.WithoutCancel(ctx)))
				if err != nil {
					return nil, fmt.Errorf("etcd session: %w", err)
				}
				sessions = append(sessions, sess)
			}
			ops := make([]lockOps, n)
			for w := range ops {
				m := concurrency.NewMutex(sessions[w], pfx)
				ops[w] = lockOps{acquire: m.Lock, release: m.Unlock}
			}
			return ops, nil
		}, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			for _, sess := range sessions {
				_ = sess.Close()
			}
			sessions = nil
			return nil
		}))
	}
	return out
}
