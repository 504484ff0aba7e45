package cluster

import (
	"sync"
	"time"
)

// stallWatch notices that this process did not run for a while — it was
// SIGSTOPped, its VM was frozen, it starved — long enough that the other
// members may have left it out of the topology (Config.SuspectAfter) and
// activated its lock grains elsewhere. Its own activations are then stale:
// their queues hold waiters that went elsewhere, and their view of who
// holds what may be old. They are reset in place (components.LockGrainReset);
// holders keep their leases and bring them back (see Locks).
type stallWatch struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// stallTick is how often the watch looks at the clock.
const stallTick = 250 * time.Millisecond

// watchStalls starts the watch; onStall gets the length of each stall of
// at least limit.
func watchStalls(limit time.Duration, onStall func(time.Duration)) *stallWatch {
	w := &stallWatch{stop: make(chan struct{})}
	w.wg.Go(func() {
		t := time.NewTicker(stallTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				// Monotonic readings: a wall-clock step is not a stall.
				if gap := now.Sub(last); gap >= limit {
					onStall(gap)
				}
				last = now
			}
		}
	})
	return w
}

// close stops the watch and waits for it.
func (w *stallWatch) close() {
	if w == nil {
		return
	}
	close(w.stop)
	w.wg.Wait()
}
