//go:build reliability

package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/history"
	"github.com/baton-go/baton/integration/internal/reliability"
	"github.com/baton-go/baton/runtime"
)

// The lock scenario's workload and faults.
const (
	// faultLockTTL is every lease's TTL: etcd's shortest.
	faultLockTTL = 2 * time.Second
	// faultCallTimeout is each Acquire, TryAcquire and Release call's
	// deadline; a call that returns more than faultHangSlack after it is a
	// hang.
	faultCallTimeout = 4 * time.Second
	faultHangSlack   = 2 * time.Second
	// faultPause is how long the backend is SIGSTOPped.
	faultPause = 2 * time.Second
	// faultPartition is how long one node is cut off from the backend.
	faultPartition = 3 * time.Second
	// faultLostBound is how long after the partition began the cut-off
	// holder may take to see Done: its TTL and a margin for a loaded
	// machine.
	faultLostBound = faultLockTTL + time.Second
)

// faultHistory collects the history events of every holder of a scenario.
type faultHistory struct {
	mu     sync.Mutex
	events []history.Event
	ops    atomic.Int64 // acquires, writes and releases invoked
	hangs  atomic.Int64 // calls that overran their deadline
}

func (h *faultHistory) add(e history.Event) {
	if e.Time == 0 {
		e.Time = time.Now().UnixNano()
	}
	switch e.Kind {
	case history.AcquireInvoked, history.WriteInvoked, history.ReleaseInvoked:
		h.ops.Add(1)
	}
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *faultHistory) all() []history.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]history.Event(nil), h.events...)
}

// grantsAfter counts the grants recorded after t by process proc (any
// process when proc is "").
func (h *faultHistory) grantsAfter(t time.Time, proc string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Kind == history.Granted && e.Time > t.UnixNano() && (proc == "" || e.Process == proc) {
			n++
		}
	}
	return n
}

// failures is the last n acquire errors, for a failure message.
func (h *faultHistory) failures(n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for i := len(h.events) - 1; i >= 0 && len(out) < n; i-- {
		if e := h.events[i]; e.Kind == history.AcquireFailed || (e.Kind == history.ReleaseReturned && e.Err != "") {
			out = append(out, fmt.Sprintf("%s %s at %s: %s", e.Lease, e.Process, e.At().Format("15:04:05.000"), e.Err))
		}
	}
	return strings.Join(out, "; ")
}

func (h *faultHistory) releaseErrs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if e.Kind == history.ReleaseReturned && e.Err != "" {
			out = append(out, fmt.Sprintf("%s at %s: %s", e.Lease, e.At().Format("15:04:05.000"), e.Err))
		}
	}
	return strings.Join(out, "; ")
}

// timed runs call with a faultCallTimeout context and counts a hang when
// it returns more than faultHangSlack after its deadline.
func (h *faultHistory) timed(t *testing.T, what string, call func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), faultCallTimeout)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	if took := time.Since(start); took > faultCallTimeout+faultHangSlack {
		h.hangs.Add(1)
		t.Errorf("%s took %v, deadline %v: %v", what, took.Round(time.Millisecond), faultCallTimeout, err)
	}
	return err
}

// faultHolder is one goroutine that takes a lock again and again through a
// node's lock facade, as a careful holder would: a fenced write right after
// the grant, 50–200ms of work, a second write only while the lease is
// usable (Done open and, without auto-renewal, before acquire-invoked +
// TTL), then Release. Holders with auto-renewal wait in Acquire; the
// others poll with TryAcquire.
type faultHolder struct {
	proc, lock string
	locks      *runtime.LockClient
	renew      bool
	res        string // the fenced resource's URL
	hc         *http.Client
	hist       *faultHistory
}

func (w *faultHolder) run(t *testing.T, stop <-chan struct{}) {
	var watchers sync.WaitGroup
	defer watchers.Wait()
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s/%s/%d", w.proc, w.lock, n)
		ev := func(kind history.Kind) history.Event {
			return history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: kind}
		}
		invoked := time.Now()
		e := ev(history.AcquireInvoked)
		e.Time, e.TTL, e.Renew = invoked.UnixNano(), faultLockTTL, w.renew
		w.hist.add(e)
		var lease backends.Lease
		err := w.hist.timed(t, "acquire "+id, func(ctx context.Context) error {
			var err error
			opts := backends.LockOptions{TTL: faultLockTTL, AutoRenew: w.renew}
			if w.renew {
				lease, err = w.locks.Acquire(ctx, w.lock, opts)
			} else {
				lease, err = w.locks.TryAcquire(ctx, w.lock, opts)
			}
			return err
		})
		if err != nil {
			f := ev(history.AcquireFailed)
			f.Err = err.Error()
			w.hist.add(f)
			faultNap(stop, 20*time.Millisecond+rand.N(40*time.Millisecond))
			continue
		}
		g := ev(history.Granted)
		g.Token, g.TTL = lease.Token(), lease.TTL()
		w.hist.add(g)
		watchers.Go(func() {
			select {
			case <-lease.Done():
				w.hist.add(ev(history.Done))
			case <-stop:
			}
		})
		usable := func() bool {
			select {
			case <-lease.Done():
				return false
			default:
			}
			return w.renew || time.Now().Before(invoked.Add(faultLockTTL))
		}
		write := func() {
			if !usable() {
				return
			}
			e := ev(history.WriteInvoked)
			e.Token = lease.Token()
			w.hist.add(e)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _ = history.WriteTo(ctx, w.hc, w.res, history.Write{Process: w.proc, Lock: w.lock, Lease: id, Token: lease.Token()})
		}
		write()
		faultNap(stop, 50*time.Millisecond+rand.N(150*time.Millisecond))
		write()
		w.hist.add(ev(history.ReleaseInvoked))
		err = w.releaseCarefully(t, id, lease)
		r := ev(history.ReleaseReturned)
		if err != nil {
			r.Err = err.Error()
		}
		w.hist.add(r)
	}
}

// releaseCarefully releases lease, and tries again for a while when the
// release failed for another reason than ErrNotHeld: such a lease may
// still be held (and, with auto-renewal, renewed), so a careful holder
// does not walk away from it.
func (w *faultHolder) releaseCarefully(t *testing.T, id string, lease backends.Lease) error {
	var err error
	for range 5 {
		err = w.hist.timed(t, "release "+id, lease.Release)
		if err == nil || errors.Is(err, backends.ErrNotHeld) {
			return err
		}
		select {
		case <-lease.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

// faultNap waits d or until stop closes.
func faultNap(stop <-chan struct{}, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-stop:
	}
}

// TestReliabilityLocks: three nodes contend on two lock names through
// node.Locks(), each holder writing to a fenced resource with its token,
// while the backend is killed with SIGKILL and restarted, frozen with
// SIGSTOP, one node's connections are reset, and that node is cut off from
// the backend by a blackholing proxy while it holds a third lock that
// another node waits for. The history checker then judges the record: no
// two valid leases of one lock at once, strictly increasing tokens, no
// write accepted after a newer grant. The cut-off holder must see its
// lease's Done close within faultLostBound; a Done that never comes is a
// silent loss, counted as a hang.
func TestReliabilityLocks(t *testing.T) {
	for _, kind := range faultBackends {
		t.Run(kind, func(t *testing.T) { runFaultLocks(t, kind) })
	}
}

func runFaultLocks(t *testing.T, kind string) {
	srv := startFaultBackend(t, kind)
	res, err := history.StartResource()
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close() })
	px := harness.StartProxy(t, srv.addr()) // before the nodes: it closes after they stop

	names := []string{"n1", "n2", "n3"}
	nodes := make([]*runtime.Node, len(names))
	for i, name := range names {
		addr := srv.addr()
		if i == 2 {
			addr = px.Addr() // n3 reaches the backend through the proxy
		}
		nodes[i] = startFaultNode(t, faultSpec(kind, fmt.Sprintf("locks-%s-%s", kind, name), addr))
	}
	cut := nodes[2]

	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	hist := &faultHistory{}
	locks := []string{"rel-a", "rel-b"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, node := range nodes {
		for j, lock := range locks {
			w := &faultHolder{proc: names[i], lock: lock, locks: node.Locks(), renew: (i+j)%2 == 0,
				res: res.URL(), hc: hc, hist: hist}
			wg.Go(func() { w.run(t, stop) })
		}
	}
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(halt) // also when a require below ends the test early

	start := time.Now()
	faults := 0
	note := func(what string, from time.Time) {
		faults++
		t.Logf("t+%v: %s (%v)", from.Sub(start).Round(time.Millisecond), what, time.Since(from).Round(time.Millisecond))
	}
	// recovered waits (bounded) for a grant after t by proc ("" for any
	// node), then lets the workload run for a moment.
	recovered := func(after time.Time, proc, what string) {
		if !faultWait(15*time.Second, func() bool { return hist.grantsAfter(after, proc) > 0 }) {
			t.Errorf("no grant%s within 15s after %s; last failures: %s", map[bool]string{true: "", false: " on " + proc}[proc == ""], what, hist.failures(5)+" / "+hist.releaseErrs())
		}
		faultHold(t, time.Second)
	}

	require.True(t, faultWait(10*time.Second, func() bool { return hist.grantsAfter(start, "") >= 5 }), "the locks were hardly granted")

	f := time.Now()
	srv.restart()
	note("kill -9 and restart of the backend", f)
	recovered(f, "", "the restart")

	f = time.Now()
	srv.pause()
	faultHold(t, faultPause)
	srv.resume()
	note("SIGSTOP of the backend", f)
	recovered(f, "", "the pause")

	f = time.Now()
	n := px.Reset()
	note(fmt.Sprintf("reset of n3's %d connections", n), f)
	recovered(f, "n3", "the reset")

	// The partition: n3 holds rel-p (auto-renewed) while n1 waits for it.
	// Cut off, n3 cannot renew; the backend lets the lease expire and
	// grants it to n1, and n3 must have seen Done close by then.
	p := &faultHolder{proc: "n3", lock: "rel-p", locks: cut.Locks(), renew: true, res: res.URL(), hc: hc, hist: hist}
	pLease := p.grant(t, "n3/rel-p/1")
	w1 := &faultHolder{proc: "n1", lock: "rel-p", locks: nodes[0].Locks(), renew: true, res: res.URL(), hc: hc, hist: hist}
	waiter := make(chan backends.Lease, 1)
	go func() {
		defer close(waiter)
		waiter <- w1.waitGrant(t, "n1/rel-p/1", 20*time.Second)
	}()
	faultHold(t, 300*time.Millisecond) // n1 is waiting
	f = time.Now()
	px.Blackhole(true)
	lostAfter := time.Duration(-1)
	select {
	case <-pLease.Done():
		lostAfter = time.Since(f)
		hist.add(history.Event{Process: "n3", Lock: "rel-p", Lease: "n3/rel-p/1", Kind: history.Done})
	case <-time.After(faultLostBound):
	}
	faultHold(t, faultPartition-time.Since(f))
	px.Blackhole(false)
	note("partition of n3 (blackhole)", f)
	if lostAfter < 0 {
		hist.hangs.Add(1)
		t.Errorf("n3's lease of rel-p was not reported lost (Done) within %v of the partition", faultLostBound)
		select {
		case <-pLease.Done():
			hist.add(history.Event{Process: "n3", Lock: "rel-p", Lease: "n3/rel-p/1", Kind: history.Done})
		case <-time.After(10 * time.Second):
		}
	} else {
		t.Logf("n3 saw its lease of rel-p lost %v after the partition began (TTL %v)", lostAfter.Round(time.Millisecond), faultLockTTL)
	}
	next := <-waiter
	if next == nil {
		t.Errorf("n1 never got rel-p after n3 was cut off")
	} else {
		w1.release(t, "n1/rel-p/1", next)
	}
	p.release(t, "n3/rel-p/1", pLease) // ErrNotHeld: it is lost
	recovered(f, "n3", "the partition")

	halt()
	events := append(hist.all(), res.Events()...)
	rep := history.CheckLocks(events, nil)
	t.Logf("%s: %d faults in %v; history: %s", kind, faults, time.Since(start).Round(time.Millisecond), rep)
	assert.Positive(t, rep.WritesAccepted)
	reliability.Record(t, reliability.Report{
		Scenario:      "locks/" + kind + "/facade",
		Faults:        faults,
		Operations:    int(hist.ops.Load()),
		DoubleGrants:  rep.DoubleGrants + rep.TokenRegressions,
		StaleAccepted: rep.StaleWritesAccepted,
		Hangs:         int(hist.hangs.Load()),
	})
}

// grant takes w.lock with Acquire, as lease id, records it and writes once
// with its token; it fails the test when the lock is not granted.
func (w *faultHolder) grant(t *testing.T, id string) backends.Lease {
	t.Helper()
	lease := w.waitGrant(t, id, faultCallTimeout)
	require.NotNil(t, lease, "%s: %s not granted", w.proc, w.lock)
	return lease
}

// waitGrant is grant with a deadline of d that reports nil instead of
// failing the test.
func (w *faultHolder) waitGrant(t *testing.T, id string, d time.Duration) backends.Lease {
	inv := history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.AcquireInvoked, Time: time.Now().UnixNano(),
		TTL: faultLockTTL, Renew: w.renew}
	w.hist.add(inv)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	start := time.Now()
	lease, err := w.locks.Acquire(ctx, w.lock, backends.LockOptions{TTL: faultLockTTL, AutoRenew: w.renew})
	if took := time.Since(start); took > d+faultHangSlack {
		w.hist.hangs.Add(1)
		t.Errorf("acquire %s took %v, deadline %v", id, took, d)
	}
	if err != nil {
		w.hist.add(history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.AcquireFailed, Err: err.Error()})
		t.Logf("acquire %s: %v", id, err)
		return nil
	}
	w.hist.add(history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.Granted, Token: lease.Token(), TTL: lease.TTL()})
	w.hist.add(history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.WriteInvoked, Token: lease.Token()})
	ctx2, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel2()
	_, _ = history.WriteTo(ctx2, w.hc, w.res, history.Write{Process: w.proc, Lock: w.lock, Lease: id, Token: lease.Token()})
	return lease
}

// release releases lease id of w.lock and records it; ErrNotHeld (the
// lease was lost) is expected and not an error.
func (w *faultHolder) release(t *testing.T, id string, lease backends.Lease) {
	w.hist.add(history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.ReleaseInvoked})
	err := w.releaseCarefully(t, id, lease)
	r := history.Event{Process: w.proc, Lock: w.lock, Lease: id, Kind: history.ReleaseReturned}
	if err != nil {
		r.Err = err.Error()
		if !errors.Is(err, backends.ErrNotHeld) {
			t.Logf("release %s: %v", id, err)
		}
	}
	w.hist.add(r)
}
