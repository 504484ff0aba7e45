package components

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Backoff is a capped, jittered exponential schedule:
// delay(n) = min(Max, Initial·Multiplier^(n-1)) scaled by a random factor in
// [1-Jitter, 1+Jitter] (never above Max). n counts failures since the last
// success.
//
// protoactor's own "exponential" strategy grows linearly and has no cap,
// which is why Baton carries its own.
type Backoff struct {
	// Initial is the first delay. Default: 100ms.
	Initial time.Duration
	// Max caps every delay. Default: 10s.
	Max time.Duration
	// Multiplier grows the delay per failure. Default: 2.
	Multiplier float64
	// Jitter is the ± fraction applied to each delay, in [0, 1]. Default: 0.2.
	Jitter float64
}

// DefaultBackoff returns the schedule used when none is configured.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b.Initial <= 0 {
		b.Initial = d.Initial
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = d.Multiplier
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		b.Jitter = d.Jitter
	}
	return b
}

// Delay returns the delay before retry number attempt (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.Initial)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		d *= 1 - b.Jitter + 2*b.Jitter*rand.Float64()
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d)
}

// BackoffStrategy is a protoactor SupervisorStrategy that restarts a failed
// child after Backoff.Delay(n), where n is the child's consecutive failures.
// It never gives up: a coordination backend that comes back must be picked
// up again however long it was gone. A child reports recovery by calling
// Reset (the connector actor does so once connected).
type BackoffStrategy struct {
	backoff Backoff
	logger  *slog.Logger
	// onRestartScheduled, if set, observes every scheduled restart.
	onRestartScheduled func(child *actor.PID, attempt int, delay time.Duration, reason any)

	mu       sync.Mutex
	failures map[string]int // child id → consecutive failures
	timers   map[string]*time.Timer
	stopped  bool
}

// NewBackoffStrategy returns a strategy with the given schedule. observe may
// be nil.
func NewBackoffStrategy(b Backoff, logger *slog.Logger, observe func(child *actor.PID, attempt int, delay time.Duration, reason any)) *BackoffStrategy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &BackoffStrategy{
		backoff: b.withDefaults(), logger: logger, onRestartScheduled: observe,
		failures: map[string]int{}, timers: map[string]*time.Timer{},
	}
}

// HandleFailure implements actor.SupervisorStrategy.
func (s *BackoffStrategy) HandleFailure(_ *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason any, _ any) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		supervisor.StopChildren(child)
		return
	}
	s.failures[child.Id]++
	attempt := s.failures[child.Id]
	delay := s.backoff.Delay(attempt)
	if t := s.timers[child.Id]; t != nil {
		t.Stop()
	}
	s.timers[child.Id] = time.AfterFunc(delay, func() {
		s.mu.Lock()
		stopped := s.stopped
		delete(s.timers, child.Id)
		s.mu.Unlock()
		if !stopped {
			supervisor.RestartChildren(child)
		}
	})
	s.mu.Unlock()
	s.logger.Debug("baton: restarting failed actor", "child", child.Id, "attempt", attempt, "delay", delay, "reason", reason)
	if s.onRestartScheduled != nil {
		s.onRestartScheduled(child, attempt, delay, reason)
	}
}

// Reset clears child's failure count after it recovered.
func (s *BackoffStrategy) Reset(child *actor.PID) {
	s.mu.Lock()
	delete(s.failures, child.Id)
	s.mu.Unlock()
}

// Stop cancels pending restarts; later failures stop the child instead.
func (s *BackoffStrategy) Stop() {
	s.mu.Lock()
	s.stopped = true
	for id, t := range s.timers {
		t.Stop()
		delete(s.timers, id)
	}
	s.mu.Unlock()
}
