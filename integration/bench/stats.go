package main

import (
	"context"
	"errors"
	"math"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// round is what one run of one implementation measured.
type round struct {
	ops      int64           // completed operations (what ops_per_sec counts)
	elapsed  time.Duration   // wall time of the measured region
	lat      []time.Duration // one sample per operation (or per delivery, for fan-out)
	fromCall []time.Duration // config.watch_fanout: delivery latencies measured from the Set call
	errs     int64           // operations that failed (not counted in ops)
	firstErr error

	acquisitions int64 // lock.contended: every acquisition, hand-off or not
}

// cell accumulates the rounds of one (scenario, backend, impl, callers).
type cell struct {
	Scenario string
	Backend  string
	Impl     string
	Callers  int

	ops      int64
	elapsed  time.Duration
	mallocs  uint64
	lat      []time.Duration
	fromCall []time.Duration
	errs     int64
	firstErr error
	acqs     int64

	// Extra, scenario-specific figures (config.watch_fanout).
	extra map[string]float64
}

func (c *cell) add(r round, mallocs uint64) {
	c.ops += r.ops
	c.elapsed += r.elapsed
	c.mallocs += mallocs
	c.lat = append(c.lat, r.lat...)
	c.fromCall = append(c.fromCall, r.fromCall...)
	c.errs += r.errs
	c.acqs += r.acquisitions
	if c.firstErr == nil {
		c.firstErr = r.firstErr
	}
}

func (c *cell) opsPerSec() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.ops) / c.elapsed.Seconds()
}

func (c *cell) allocsPerOp() float64 {
	if c.ops == 0 {
		return 0
	}
	return float64(c.mallocs) / float64(c.ops)
}

// percentile returns the p-th percentile (0 < p <= 100) of the samples, in microseconds, by the
// nearest-rank method; NaN without samples. It sorts the samples.
func (c *cell) percentile(p float64) float64 { return percentile(c.lat, p) }

func percentile(samples []time.Duration, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	if !slices.IsSorted(samples) {
		slices.Sort(samples)
	}
	rank := int(math.Ceil(p / 100 * float64(len(samples))))
	rank = min(max(rank, 1), len(samples))
	return float64(samples[rank-1]) / float64(time.Microsecond)
}

// mallocs returns the process's cumulative heap allocation count. ReadMemStats stops the world
// briefly, so it is called only at round boundaries.
func mallocs() uint64 {
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.Mallocs
}

// heapAndGoroutines settles the heap (two GCs, so finalizers and sweeping are done) and
// returns the live heap plus goroutine stack bytes and the goroutine count.
func heapAndGoroutines() (uint64, int) {
	goruntime.GC()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, goruntime.NumGoroutine()
}

// settledHeapAndGoroutines is heapAndGoroutines once the process has stopped shrinking: what
// an earlier scenario shut down (cluster nodes, connections) stays reachable from pending
// timers and winding-down goroutines for a while, and memory freed during a measurement
// would be credited to it. It reads again every 250ms until two readings in a row hold the
// goroutine count and keep the heap within 1%, for at most 15 seconds.
func settledHeapAndGoroutines() (uint64, int) {
	heap, gor := heapAndGoroutines()
	stable := 0
	for range 60 {
		time.Sleep(250 * time.Millisecond)
		h, g := heapAndGoroutines()
		if g == gor && h >= heap-heap/100 {
			if stable++; stable == 2 {
				return h, g
			}
		} else {
			stable = 0
		}
		heap, gor = h, g
	}
	return heap, gor
}

// loopOp is one operation of a closed-loop worker. It returns the latency to record (usually
// the time of the call; for contended locks, only the time spent waiting) and, with an error
// caused by the end of a cut-off round, how long it had waited until then. notAnOp with a nil
// error means the call succeeded but is not what the scenario counts.
// notAnOp is the latency a loopOp returns for a call that is neither counted nor sampled.
const notAnOp time.Duration = -1

type loopOp func(ctx context.Context, worker int, i int) (time.Duration, error)

// closedLoop runs callers workers, each calling op back to back until d has passed, and
// returns what they did. With cutoff, the workers' context ends at the deadline, so an
// operation still blocked then (a lock waiter) is abandoned and not counted; without it, an
// operation in flight at the deadline finishes and counts, and the context only bounds a hung
// call.
func closedLoop(ctx context.Context, callers int, d time.Duration, cutoff bool, op loopOp) round {
	start := time.Now()
	deadline := start.Add(d)
	var octx context.Context
	var cancel context.CancelFunc
	if cutoff {
		octx, cancel = context.WithDeadline(ctx, deadline)
	} else {
		octx, cancel = context.WithTimeout(ctx, d+opTimeout)
	}
	defer cancel()

	type result struct {
		ops, errs int64
		lat       []time.Duration
		err       error
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range callers {
		wg.Go(func() {
			res := &results[w]
			res.lat = make([]time.Duration, 0, 1024)
			for i := 0; !stop.Load(); i++ {
				lat, err := op(octx, w, i)
				now := time.Now()
				switch {
				case err == nil && lat == notAnOp:
				case err == nil:
					res.ops++
					res.lat = append(res.lat, lat)
				case cutoff && endedByDeadline(octx, err, now, deadline):
					// Cut short by the end of the round: not a result, not a failure. A wait
					// that was cut short still happened: its length so far is a lower bound,
					// and leaving it out would hide a caller that never got its turn.
					if lat > 0 {
						res.lat = append(res.lat, lat)
					}
					stop.Store(true)
				default:
					res.errs++
					if res.err == nil {
						res.err = err
					}
					if ctx.Err() != nil {
						return
					}
				}
				if !now.Before(deadline) {
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	r := round{elapsed: time.Since(start)}
	for _, res := range results {
		r.ops += res.ops
		r.errs += res.errs
		r.lat = append(r.lat, res.lat...)
		if r.firstErr == nil {
			r.firstErr = res.err
		}
	}
	return r
}

// endedByDeadline reports whether err is the round's deadline cutting an operation short.
// Some clients (protoactor futures among them) turn the context's deadline into a timer of
// their own that may fire a little before the context itself is done.
func endedByDeadline(ctx context.Context, err error, now, deadline time.Time) bool {
	const slack = 50 * time.Millisecond
	if now.Before(deadline.Add(-slack)) {
		return false
	}
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)
}

// opTimeout bounds a single benchmark operation that should never take long: a hung call is
// an error, not a hang of the whole program.
const opTimeout = 30 * time.Second

// errTimeout reports an event that did not arrive in time.
var errTimeout = errors.New("bench: event did not arrive within the timeout")
