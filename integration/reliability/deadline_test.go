//go:build reliability

package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/reliability"
	"github.com/baton-go/baton/runtime"
)

// The deadline scenario's bounds.
const (
	// faultOpDeadline is every call's deadline.
	faultOpDeadline = time.Second
	// faultOpSlack is how far past it a call may return before it counts
	// as a hang.
	faultOpSlack = 500 * time.Millisecond
)

// faultOp is one facade call, made with ctx.
type faultOp struct {
	name string
	call func(ctx context.Context, n *runtime.Node) error
	// bad: the call has invalid input and must fail with
	// ErrInvalidArgument, fault or not.
	bad bool
}

// faultOps are the calls of every facade, plus a few with bad input.
func faultOps() []faultOp {
	opts := backends.LockOptions{TTL: faultLockTTL}
	svc := backends.ServiceInfo{ID: "deadline-1", Name: "deadline", Address: "127.0.0.1:1"}
	return []faultOp{
		{name: "cache get", call: func(ctx context.Context, n *runtime.Node) error {
			_, err := n.Cache("deadline").Get(ctx, "k")
			return err
		}},
		{name: "cache set", call: func(ctx context.Context, n *runtime.Node) error {
			return n.Cache("deadline").Set(ctx, "k", []byte("v"), time.Minute)
		}},
		{name: "lock try acquire", call: func(ctx context.Context, n *runtime.Node) error {
			return releaseIfGranted(n.Locks().TryAcquire(ctx, "deadline-try", opts))
		}},
		{name: "lock acquire", call: func(ctx context.Context, n *runtime.Node) error {
			return releaseIfGranted(n.Locks().Acquire(ctx, "deadline-wait", opts))
		}},
		{name: "config get", call: func(ctx context.Context, n *runtime.Node) error {
			_, err := n.Config().Get(ctx, "deadline")
			return err
		}},
		{name: "config set", call: func(ctx context.Context, n *runtime.Node) error {
			return n.Config().Set(ctx, "deadline", "v")
		}},
		{name: "discovery register", call: func(ctx context.Context, n *runtime.Node) error {
			return n.Discovery().Register(ctx, svc, 10*time.Second)
		}},
		{name: "discovery discover", call: func(ctx context.Context, n *runtime.Node) error {
			_, err := n.Discovery().Discover(ctx, "deadline")
			return err
		}},
		{name: "election leader", call: func(ctx context.Context, n *runtime.Node) error {
			_, err := n.Election().Leader(ctx, "deadline")
			return err
		}},
		{name: "cache set, empty key", bad: true, call: func(ctx context.Context, n *runtime.Node) error {
			return n.Cache("deadline").Set(ctx, "", []byte("v"), 0)
		}},
		{name: "lock acquire, TTL below the minimum", bad: true, call: func(ctx context.Context, n *runtime.Node) error {
			return releaseIfGranted(n.Locks().Acquire(ctx, "deadline-bad", backends.LockOptions{TTL: time.Millisecond}))
		}},
		{name: "discovery register, no address", bad: true, call: func(ctx context.Context, n *runtime.Node) error {
			return n.Discovery().Register(ctx, backends.ServiceInfo{ID: "deadline-2", Name: "deadline"}, 0)
		}},
	}
}

// releaseIfGranted gives back a lease a call got after all (the backend
// answered before the fault took hold), so that it holds nothing later.
func releaseIfGranted(lease backends.Lease, err error) error {
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = lease.Release(ctx)
	}
	return err
}

// TestReliabilityDeadlines: with the backend cut off — blackholed by a
// proxy between the node and the server, or frozen with SIGSTOP — every
// facade call made with a 1s deadline returns within 1.5s with a typed
// error: backends.ErrUnavailable, or the caller's context.DeadlineExceeded
// (wrapped with ErrNotObtained by Acquire). Calls with bad input must fail
// with a typed error too: ErrInvalidArgument, or, where the facade looks at
// the backend before the input, the fault's. Each call runs twice:
// right after the fault began (it reaches the backend and waits) and once
// the node's health check has noticed (it may fail fast). An overrun, or a
// call that never returns, counts as a hang — unless the test process
// itself was not scheduled for most of the overrun (see faultTimedCall),
// which is logged; an untyped error fails the test. Once the fault is undone the node must serve again.
func TestReliabilityDeadlines(t *testing.T) {
	for _, kind := range faultBackends {
		for _, fault := range []string{"blackhole", "sigstop"} {
			t.Run(kind+"/"+fault, func(t *testing.T) { runFaultDeadlines(t, kind, fault) })
		}
	}
}

func runFaultDeadlines(t *testing.T, kind, fault string) {
	srv := startFaultBackend(t, kind)
	px := harness.StartProxy(t, srv.addr())
	node := startFaultNode(t, faultSpec(kind, "deadline-"+kind+"-"+fault, px.Addr()))
	ops := faultOps()
	// Warm up: every facade has talked to the backend once.
	for _, op := range ops {
		_ = op.call(faultCtx(t, 5*time.Second), node)
	}

	on, off := func() { px.Blackhole(true) }, func() { px.Blackhole(false) }
	if fault == "sigstop" {
		on, off = srv.pause, srv.resume
	}
	on()
	t.Cleanup(off) // undone already, unless a check below ends the test early
	calls, hangs, masked, stalls := 0, 0, 0, 0
	var worst time.Duration
	for round := range 2 {
		for _, op := range ops {
			calls++
			took, stall, returned, err := faultTimedCall(op, node)
			worst = max(worst, took)
			what := fmt.Sprintf("%s (round %d) after %v", op.name, round+1, took.Round(time.Millisecond))
			switch {
			case !returned:
				hangs++
				t.Errorf("%s: never returned", what)
				continue
			case took > faultOpDeadline+faultOpSlack && stall >= took-faultOpDeadline-faultOpSlack/2:
				// The test process itself went unserved for most of the
				// overrun: the machine, not the call.
				stalls++
				t.Logf("%s: overran its %v deadline, but this process was not scheduled for %v meanwhile: not counted",
					what, faultOpDeadline, stall.Round(time.Millisecond))
			case took > faultOpDeadline+faultOpSlack:
				hangs++
				t.Errorf("%s: overran its %v deadline: %v", what, faultOpDeadline, err)
			}
			switch {
			case op.bad && errors.Is(err, backends.ErrInvalidArgument):
			case op.bad:
				// Typed, but not the most useful answer: the facade
				// checks the backend before the input.
				masked++
				assert.True(t, errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded),
					"%s: want a typed error, got %v", what, err)
			case err == nil:
				t.Logf("%s: succeeded with the backend cut off (served locally)", what)
			case !errors.Is(err, backends.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
				t.Errorf("%s: want ErrUnavailable or context.DeadlineExceeded, got %v", what, err)
			}
		}
		if round == 0 {
			faultHold(t, time.Second) // the health checks (every 200ms) notice the fault
		}
	}
	off()
	t.Logf("%s/%s: %d calls, slowest %v (deadline %v), %d hangs, %d overruns while the process stalled; %d of the calls with bad input got the fault's error, not ErrInvalidArgument",
		kind, fault, calls, worst.Round(time.Millisecond), faultOpDeadline, hangs, stalls, masked)

	served := faultWait(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return node.Cache("deadline").Set(ctx, "after", []byte("v"), time.Minute) == nil
	})
	assert.True(t, served, "the node did not serve again within 20s of the fault's end")

	reliability.Record(t, reliability.Report{
		Scenario:   "deadlines/" + kind + "/" + fault,
		Faults:     1,
		Operations: calls,
		Hangs:      hangs,
	})
}

// faultTimedCall runs op with a faultOpDeadline context and reports how
// long it took; returned is false when it had not returned 10s after its
// deadline (it is left running, and the test fails). stall is the longest
// stretch in which a ticker of this process, beside the call, was not
// served: on a machine shared with other suites the whole process can go
// unscheduled for seconds, and that is not the call's doing.
func faultTimedCall(op faultOp, node *runtime.Node) (took, stall time.Duration, returned bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), faultOpDeadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- op.call(ctx, node) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.NewTimer(faultOpDeadline + 10*time.Second)
	defer giveUp.Stop()
	last := start
	for {
		select {
		case err = <-done:
			now := time.Now()
			return now.Sub(start), max(stall, now.Sub(last)), true, err
		case now := <-tick.C:
			stall, last = max(stall, time.Since(last)), now
		case <-giveUp.C:
			return time.Since(start), stall, false, nil
		}
	}
}
