package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// This file holds what the Locker and the Elector share besides their
// lockHub: waiting for a notification, the local expiry of what they hold,
// and the bookkeeping that lets Close give everything back.

// wakeReason says why hubWaiter.wait returned.
type wakeReason int

const (
	wakeRetry  wakeReason = iota // notified, or the fallback passed: try again
	wakeCtx                      // ctx ended
	wakeClosed                   // the owner is closing
)

// wait sleeps until w is notified, fallback passes, ctx ends or closing is
// closed.
func (w *hubWaiter) wait(ctx context.Context, closing <-chan struct{}, fallback time.Duration) wakeReason {
	t := time.NewTimer(fallback)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return wakeCtx
	case <-closing:
		return wakeClosed
	case <-w.C:
	case <-t.C:
	}
	return wakeRetry
}

// pause sleeps for d and reports false instead when done or closing is
// closed first.
func pause(d time.Duration, done, closing <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-closing:
		return false
	case <-t.C:
		return true
	}
}

// expiry is the local life of a lease or a leadership term: done closes
// once, when it is given back, found lost, or when its timer fires because
// no renewal reached the server in time.
type expiry struct {
	done  chan struct{}
	mu    sync.Mutex // also guards what the embedding type keeps beside it
	timer *time.Timer
	ended bool
}

// finish closes done (once) and stops the timer.
func (x *expiry) finish() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ended {
		x.ended = true
		close(x.done)
		if x.timer != nil {
			x.timer.Stop()
		}
	}
}

// arm starts the timer that calls fire after d.
func (x *expiry) arm(d time.Duration, fire func()) {
	x.mu.Lock()
	x.timer = time.AfterFunc(d, fire)
	x.mu.Unlock()
}

// held is what holdings tracks: a lease or a leadership term.
type held interface {
	comparable
	arm(d time.Duration, fire func())
	end() // finishes it and drops it from its holdings
	// giveBack runs the script that deletes its key if the key is still
	// its own, and notifies the waiters; the reply is 1 when it did.
	giveBack(ctx context.Context, cl goredis.UniversalClient) *goredis.Cmd
}

// holdings is what a Locker or an Elector holds on the server, and its
// lifecycle: closing closes on Close, and wg counts the goroutines that
// must end before Close returns (renewals, observers).
type holdings[T held] struct {
	closing chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	closed bool
	set    map[T]struct{}
}

func (h *holdings[T]) init() {
	h.closing = make(chan struct{})
	h.set = make(map[T]struct{})
}

func (h *holdings[T]) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// track counts one more goroutine for Close to wait for (the caller calls
// wg.Done when it ends); false when already closed.
func (h *holdings[T]) track() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// add records x, granted for ttl by a request sent at start, arms its local
// expiry and starts renew (when not nil) in a tracked goroutine. It reports
// false, doing nothing, when closed: the caller must give x back itself.
// The expiry counts from before the request, so x ends locally no later
// than the server lets its key expire.
func (h *holdings[T]) add(x T, ttl time.Duration, start time.Time, renew func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.set[x] = struct{}{}
	x.arm(ttl-time.Since(start), x.end)
	if renew != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			renew()
		}()
	}
	return true
}

func (h *holdings[T]) remove(x T) {
	h.mu.Lock()
	delete(h.set, x)
	h.mu.Unlock()
}

// release gives x back on the server and ends it locally whatever the
// answer. closedErr is returned when already closed; op starts the error
// texts, ErrNotHeld when x was no longer held.
func (h *holdings[T]) release(ctx context.Context, conn *Connector, x T, closedErr error, op string) error {
	if h.isClosed() {
		return closedErr
	}
	cl, err := conn.client()
	if err != nil {
		return err
	}
	ok, err := x.giveBack(ctx, cl).Int()
	if err != nil {
		return mapErr(op, err)
	}
	x.end()
	if ok != 1 {
		return fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	return nil
}

// close wakes every waiter, closes hub, gives back (best effort, bounded)
// everything still held, ends it locally and waits for the tracked
// goroutines. Only the first call does anything.
func (h *holdings[T]) close(hub *lockHub, conn *Connector) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.closing)
	list := make([]T, 0, len(h.set))
	for x := range h.set {
		list = append(list, x)
	}
	h.mu.Unlock()

	hub.close()
	if cl, err := conn.client(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), lockCleanupTimeout)
		for _, x := range list {
			_ = x.giveBack(ctx, cl).Err()
		}
		cancel()
	}
	for _, x := range list {
		x.end()
	}
	h.wg.Wait()
}

// giveBackLater undoes a grant whose reply was lost — the script may have
// run on the server, or may still run: a script sent to a stalled server
// (SIGSTOP, a long pause) runs when the server continues, possibly long
// after the caller gave up. It runs script (a release or a resign: KEYS[1]
// key; ARGV id, channel) in the background, at once and then with a
// backoff of 50ms doubling to 1s, until the script reports that it gave
// the grant back. While the server does not answer (stalled, unreachable)
// the attempts go on, however long that lasts: the grant, if it is made,
// is made with a fresh TTL when the server continues. Once the server
// answers "not ours" it is processing again and runs what was queued for
// it within moments (on another connection, so possibly just after that
// answer): the attempts go on for giveBackSettle more, then stop — a grant
// that was never made never will be. id is a fresh nonce, so this can
// never free anybody else's key. Attempts go through the connector's
// current client, each bounded by lockCleanupTimeout. Close ends the loop
// after one last attempt (and waits for it); after Close a grant is given
// back once, at once, as before.
func (h *holdings[T]) giveBackLater(conn *Connector, log *slog.Logger, what string, script *goredis.Script,
	key, id, channel string) {
	if !h.track() {
		if cl, err := conn.client(); err == nil {
			giveBackNow(log, what, script, cl, key, id, channel)
		}
		return
	}
	go func() {
		defer h.wg.Done()
		var answered time.Time // when the server first answered
		backoff := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			closing := false
			if n, err := giveBackOnce(conn, script, key, id, channel); err == nil {
				if n == 1 {
					log.Debug(what+": lost grant given back", "key", key, "attempts", attempt)
					return
				}
				if answered.IsZero() {
					answered = time.Now()
				}
			} else {
				log.Debug(what+": give-back failed, retrying", "key", key, "err", err)
			}
			if !answered.IsZero() && time.Since(answered) >= giveBackSettle {
				return // the server ran what was queued: no grant was made
			}
			t := time.NewTimer(backoff)
			select {
			case <-h.closing:
				closing = true
			case <-t.C:
			}
			t.Stop()
			if closing {
				_, _ = giveBackOnce(conn, script, key, id, channel)
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	}()
}

// giveBackSettle is how long a give-back keeps trying after the server
// first answered that the grant is not there: ample for a server that
// answers to run a script that was already queued on another connection.
const giveBackSettle = time.Second

// giveBackOnce runs a give-back script once through the connector's
// current client, bounded by lockCleanupTimeout; the reply is 1 when it
// removed the key.
func giveBackOnce(conn *Connector, script *goredis.Script, key, id, channel string) (int, error) {
	cl, err := conn.client()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockCleanupTimeout)
	defer cancel()
	return script.Run(ctx, cl, []string{key}, id, channel).Int()
}

// giveBackNow runs script (a release or a resign: KEYS[1] key; ARGV id,
// channel) once, bounded by lockCleanupTimeout. It undoes a grant that came
// after Close, so that the key does not sit there for a whole TTL.
func giveBackNow(log *slog.Logger, what string, script *goredis.Script, cl goredis.UniversalClient, key, id, channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), lockCleanupTimeout)
	defer cancel()
	if err := script.Run(ctx, cl, []string{key}, id, channel).Err(); err != nil {
		log.Debug(what+": abandon failed", "key", key, "err", err)
	}
}
