//go:build reliability

package integration

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/history"
	"github.com/baton-go/baton/integration/internal/reliability"
	"github.com/baton-go/baton/runtime/cluster"
)

// The lock history test's workload and fault schedule.
const (
	// historyTTL is every lease's TTL (no auto-renewal).
	historyTTL = 2 * time.Second
	// historyRun is how long the first nodes loop on the lock; nodes that
	// join later loop until the same end.
	historyRun = 30 * time.Second
	// historySuspectAfter is the nodes' cluster.Spec.SuspectAfter: below
	// the lock TTL, so that a paused grain host is left out (and its
	// grains move) before the stall bound, with room for a loaded machine.
	historySuspectAfter = 1500 * time.Millisecond
	// grainHostPause is how long the member hosting the lock's grain (not
	// the holder) is SIGSTOPped: longer than grainHostStallBound, or a
	// grain that stays on its stopped host would go unnoticed.
	grainHostPause = grainHostStallBound + 2*time.Second
	// holderPause is how long a process holding the lock is SIGSTOPped:
	// longer than historyTTL, so its lease runs out while it cannot see
	// Done.
	holderPause = 3500 * time.Millisecond
	// grainHostStallBound is the longest stretch without a grant allowed
	// once the grain's host stopped answering: a host that accepts TCP
	// connections but answers nothing must lose the grain within about one
	// lease TTL, and the new activation then waits at most for the held
	// lease to run out.
	grainHostStallBound = historyTTL + 2*time.Second
)

// TestReliabilityClusterLocks: nodes loop on one lock (acquire, fenced write,
// 150–500 ms of work, a second write while the lease is still usable,
// release) and record every step, while the cluster changes under them:
// two nodes join (the lock's grain moves to each while a holder, frozen
// with SIGSTOP, is still within its deadline), the grain's host is
// SIGSTOPped, a holder is SIGSTOPped past its TTL, the backend restarts
// and a holder is SIGKILLed. The history checker (integration/history)
// then judges the whole record: no two valid leases at once, increasing
// tokens, no write accepted after a newer grant. And a stopped grain host
// must not stall the lock for longer than grainHostStallBound.
func TestReliabilityClusterLocks(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		// Mutual exclusion across a kill -9 and restart is a durability
		// claim: it holds for a Redis that fsyncs every write (a Redis
		// restarted empty has forgotten its locks, by definition).
		srv := harness.StartRedis(t, harness.WithRedisAOF())
		runLockHistory(t, "redis", []string{"-redis", srv.URL()}, srv.Restart)
	})
	t.Run("etcd", func(t *testing.T) {
		srv := harness.StartEtcdProcess(t)
		runLockHistory(t, "etcd", []string{"-etcd", strings.Join(srv.Endpoints(), ",")}, srv.Restart)
	})
}

// fault is one injected fault, for the log and the gap figures.
type fault struct {
	what       string
	start, end time.Time // end: when it was undone (a pause), or start
}

func runLockHistory(t *testing.T, name string, backend []string, restartBackend func()) {
	res, err := history.StartResource()
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close() })

	// Fixed addresses let the test pick a lock whose grain moves at each
	// join: its owner among nodes 1–3, then node4, then node5.
	const nodes = 5
	addrs := loopbackAddrs(t, nodes)
	names := make([]string, nodes)
	members := make([]cluster.Member, nodes)
	for i := range nodes {
		names[i] = fmt.Sprintf("node%d", i+1)
		members[i] = cluster.Member{ID: names[i], Address: addrs[i], Kinds: []string{cluster.KindLock}}
	}
	ns := backends.Namespace{Env: "test"}
	lock := ""
	for i := 0; lock == "" && i < 10000; i++ {
		name := fmt.Sprintf("history-%d", i)
		if cluster.LockOwner(members[:4], ns, name) == addrs[3] && cluster.LockOwner(members[:5], ns, name) == addrs[4] {
			lock = name
		}
	}
	require.NotEmpty(t, lock, "no lock name moves to node4 and then node5")
	startNode := func(i int) *clusterProc {
		p := startClusterProc(t, names[i], append([]string{"-name", clusterName(t), "-bind", addrs[i],
			"-suspect-after", historySuspectAfter.String()}, backend...)...)
		require.Equal(t, addrs[i], p.addr, "%s listens where it was told", names[i])
		return p
	}

	procs := make([]*clusterProc, 3, nodes)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() { procs[i] = startNode(i) })
	}
	wg.Wait()
	for _, p := range procs {
		require.NotNil(t, p)
	}
	waitMembers(t, procs, 3, 30*time.Second)

	live := &liveLocks{seen: map[*clusterProc]int{}, holding: map[string]heldLease{},
		invoked: map[string]time.Time{}, invokers: map[string]bool{}}
	start := time.Now()
	end := start.Add(historyRun)
	loop := func(p *clusterProc) {
		live.add(p)
		p.send("lockloop h %s %v %v %s", lock, time.Until(end).Round(time.Millisecond), historyTTL, res.URL())
	}
	for _, p := range procs {
		loop(p)
	}
	t.Logf("lock %q: grain on %s, then node4, then node5; %d nodes loop for %v (TTL %v)",
		lock, cluster.LockOwner(members[:3], ns, lock), len(procs), historyRun, historyTTL)
	require.True(t, live.waitUntil(10*time.Second, func() bool { return len(live.grants) > 0 }), "no grant within 10s")

	var faults []fault
	var deaths []history.Death
	note := func(f fault) {
		if f.end.IsZero() {
			f.end = f.start
		}
		faults = append(faults, f)
		t.Logf("t+%v: %s (for %v)", f.start.Sub(start).Round(time.Millisecond), f.what, f.end.Sub(f.start).Round(time.Millisecond))
	}
	// held waits (bounded) until a process other than the excluded ones
	// holds the lock and returns it (nil when none did in time).
	held := func(d time.Duration, not ...string) *clusterProc {
		var p *clusterProc
		live.waitUntil(d, func() bool {
			for _, c := range live.procs {
				if live.holding[c.name].lease != "" && !slices.Contains(not, c.name) && !c.paused.Load() {
					p = c
					return true
				}
			}
			return false
		})
		return p
	}

	// Two joins, each while the lock is held: the grain moves to the new
	// node, and its old activation stops with a lease granted. Until the
	// old host sees the new member, each holder in turn (not the old host)
	// is frozen for what is left of its lease: a holder that is slow to
	// learn it lost the lease, as a GC pause or a busy machine makes it,
	// must still be the only one within its own deadline.
	for i := 3; i < nodes; i++ {
		oldHost := procs[slices.Index(addrs, cluster.LockOwner(members[:i], ns, lock))]
		seen := oldHost.mark()
		moved := func() bool { return len(oldHost.linesFrom(seen, fmt.Sprintf("members %d ", i+1))) > 0 }
		f := fault{what: fmt.Sprintf("join %s (grain %s → %s)", names[i], oldHost.name, names[i]), start: time.Now()}
		joined := make(chan *clusterProc, 1)
		go func() {
			defer close(joined) // also when startNode fails the test
			joined <- startNode(i)
		}()
		for !moved() && time.Since(f.start) < 30*time.Second {
			p := held(time.Second, oldHost.name)
			if p == nil {
				continue
			}
			freeze := time.Until(live.holding[p.name].invoked.Add(historyTTL - 250*time.Millisecond))
			if freeze < 100*time.Millisecond {
				live.waitUntil(time.Second, func() bool { return live.holding[p.name].lease == "" })
				continue
			}
			frozen := fault{what: fmt.Sprintf("SIGSTOP holder %s during the join, until just before its deadline", p.name), start: time.Now()}
			p.pause()
			sleepFor(t, freeze) // the fault itself
			p.resume()
			frozen.end = time.Now()
			note(frozen)
			if moved() {
				break
			}
			live.waitUntil(time.Second, func() bool { return live.holding[p.name].lease == "" })
		}
		p := <-joined
		require.NotNil(t, p, "%s did not start", names[i])
		procs = append(procs, p)
		waitMembers(t, procs, len(procs), 30*time.Second)
		f.end = time.Now()
		note(f)
		loop(p)
	}

	t.Cleanup(func() { stopAll(procs) }) // runs first: all at once, not one by one

	// The grain's host stops answering while another process holds the
	// lock and the others, the host's own loop among them, wait.
	host := procs[4]
	require.Equal(t, addrs[4], cluster.LockOwner(members, ns, lock))
	live.waitUntil(5*time.Second, func() bool { return live.invokedBy(host.name) })
	held(5*time.Second, host.name)
	live.waitUntil(5*time.Second, func() bool { return live.holding[host.name].lease == "" })
	hostPause := fault{what: "SIGSTOP grain host " + host.name, start: time.Now()}
	host.pause()
	sleepFor(t, grainHostPause) // the fault itself
	host.resume()
	hostPause.end = time.Now()
	note(hostPause)

	// A holder stops past its TTL: it cannot see Done, its deadline is
	// what protects it.
	live.waitUntil(15*time.Second, func() bool { return live.grantsAfter(hostPause.end) > 0 })
	if p := held(5*time.Second, host.name); p != nil {
		f := fault{what: "SIGSTOP holder " + p.name, start: time.Now()}
		p.pause()
		sleepFor(t, holderPause) // the fault itself
		p.resume()
		f.end = time.Now()
		note(f)
	} else {
		t.Errorf("nobody held the lock after the grain host resumed: no holder pause")
	}

	live.waitUntil(10*time.Second, func() bool { return live.grantsAfter(faults[len(faults)-1].end) > 0 })
	f := fault{what: "backend restart", start: time.Now()}
	restartBackend()
	f.end = time.Now()
	note(f)

	// A holder dies.
	live.waitUntil(15*time.Second, func() bool { return live.grantsAfter(f.end) > 0 })
	if p := held(5*time.Second, host.name); p != nil {
		d := history.Death{Process: p.name, Time: time.Now().UnixNano()} // before the signal: never after the death
		p.kill()
		live.remove(p)
		deaths = append(deaths, d)
		note(fault{what: "SIGKILL holder " + p.name, start: time.Unix(0, d.Time)})
	} else {
		t.Errorf("nobody held the lock after the backend restart: no kill")
	}
	if last := faults[len(faults)-1].end; last.After(end.Add(-3 * time.Second)) {
		t.Errorf("the fault schedule ran until t+%v, too close to the end of the run (%v)", last.Sub(start).Round(time.Millisecond), historyRun)
	}

	// Every survivor finishes its loop.
	var events []history.Event
	for _, p := range procs {
		if slices.ContainsFunc(deaths, func(d history.Death) bool { return d.Process == p.name }) {
			events = append(events, parseHistory(t, p)...)
			continue
		}
		done := p.await(0, "done h ", time.Until(end)+40*time.Second)
		t.Logf("%s: %s (grants, acquire errors, writes accepted, rejected, skipped, failed, release errors)", p.name, strings.TrimPrefix(done, "done h "))
		events = append(events, parseHistory(t, p)...)
	}
	events = append(events, res.Events()...)
	t.Logf("run: %v, %d events", time.Since(start).Round(time.Millisecond), len(events))

	saveHistory(t, events, deaths)
	rep := history.CheckLocks(events, deaths)
	leases := history.Leases(events, deaths)
	logGrantGaps(t, start, leases, faults)
	assert.GreaterOrEqual(t, rep.Grants, 20, "the lock was hardly ever granted")
	last := faults[len(faults)-1].end
	assert.True(t, slices.ContainsFunc(leases, func(l history.Lease) bool { return l.Granted > last.UnixNano() }),
		"no grant after the last fault")
	if !rep.OK() {
		t.Errorf("the history breaks the lock's guarantees: %s", truncated(rep, 25))
	} else {
		t.Logf("history: %s", rep)
	}
	reliability.Record(t, reliability.Report{
		Scenario: "locks/" + name + "/cluster-grains", Faults: len(faults), Operations: len(events),
		DoubleGrants: rep.DoubleGrants + rep.TokenRegressions, StaleAccepted: rep.StaleWritesAccepted,
	})

	// The grain host's pause stalls the lock for at most the bound.
	stall, from := longestStall(leases, hostPause.start, hostPause.end)
	t.Logf("longest stretch without a grant once the grain host stopped: %v from t+%v (bound %v)",
		stall.Round(time.Millisecond), from.Sub(start).Round(time.Millisecond), grainHostStallBound)
	assert.LessOrEqual(t, stall, grainHostStallBound,
		"the lock stalled while its grain's host was stopped (SIGSTOP for %v)", grainHostPause)
}

// stopAll stops the processes in parallel.
func stopAll(procs []*clusterProc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// sleepFor waits d: for a fault that lasts d, the wait is the fault.
func sleepFor(t *testing.T, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
	}
}

// saveHistory writes the history, one JSON event a line (deaths as
// {"process","time"}), to the test's artifact directory: kept with
// go test -artifacts, for a second look at a failure.
func saveHistory(t *testing.T, events []history.Event, deaths []history.Death) {
	t.Helper()
	var b strings.Builder
	for _, e := range slices.SortedFunc(slices.Values(events), func(a, b history.Event) int { return cmp.Compare(a.Time, b.Time) }) {
		b.WriteString(e.String() + "\n")
	}
	for _, d := range deaths {
		fmt.Fprintf(&b, "{\"process\":%q,\"time\":%d,\"death\":true}\n", d.Process, d.Time)
	}
	path := filepath.Join(t.ArtifactDir(), "history.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	t.Logf("history: %s", path)
}

// parseHistory returns a process's lockloop events.
func parseHistory(t *testing.T, p *clusterProc) []history.Event {
	t.Helper()
	var events []history.Event
	for _, l := range p.linesFrom(0, "hist h ") {
		e, err := history.ParseEvent(strings.TrimPrefix(l, "hist h "))
		require.NoError(t, err, "%s", p.name)
		events = append(events, e)
	}
	return events
}

// liveLocks follows the lockloop events while they come, for the fault
// schedule: who holds the lock now, when it was granted.
type liveLocks struct {
	procs    []*clusterProc
	seen     map[*clusterProc]int
	holding  map[string]heldLease // process → its lease still held
	invoked  map[string]time.Time // lease → its acquire-invoked time
	invokers map[string]bool      // processes that invoked an acquire
	grants   []time.Time
}

type heldLease struct {
	lease   string
	invoked time.Time // acquire invoked: the lease's deadline is a TTL later
}

func (l *liveLocks) add(p *clusterProc) { l.procs = append(l.procs, p) }

func (l *liveLocks) remove(p *clusterProc) {
	l.procs = slices.DeleteFunc(l.procs, func(c *clusterProc) bool { return c == p })
	delete(l.holding, p.name)
}

func (l *liveLocks) update() {
	for _, p := range l.procs {
		lines, next := p.linesSince(l.seen[p])
		l.seen[p] = next
		for _, line := range lines {
			rest, ok := strings.CutPrefix(line, "hist h ")
			if !ok {
				continue
			}
			e, err := history.ParseEvent(rest)
			if err != nil {
				continue // parseHistory reports it at the end
			}
			switch e.Kind {
			case history.AcquireInvoked:
				l.invoked[e.Lease] = e.At()
				l.invokers[e.Process] = true
			case history.Granted:
				l.holding[e.Process] = heldLease{lease: e.Lease, invoked: l.invoked[e.Lease]}
				l.grants = append(l.grants, e.At())
			case history.ReleaseInvoked, history.Done:
				if l.holding[e.Process].lease == e.Lease {
					delete(l.holding, e.Process)
				}
			}
		}
	}
}

// waitUntil polls cond (after update) every 20ms for at most d.
func (l *liveLocks) waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		l.update()
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// invokedBy reports whether process proc has invoked an acquire.
func (l *liveLocks) invokedBy(proc string) bool { return l.invokers[proc] }

func (l *liveLocks) grantsAfter(t time.Time) int {
	n := 0
	for _, g := range l.grants {
		if g.After(t) {
			n++
		}
	}
	return n
}

// logGrantGaps logs the longest stretch without a grant, and how long
// after each fault the lock was granted next.
func logGrantGaps(t *testing.T, start time.Time, leases []history.Lease, faults []fault) {
	t.Helper()
	var grants []time.Time
	for _, l := range leases {
		grants = append(grants, time.Unix(0, l.Granted))
	}
	slices.SortFunc(grants, time.Time.Compare)
	off := func(at time.Time) string { return "t+" + at.Sub(start).Round(time.Millisecond).String() }
	faults = slices.SortedStableFunc(slices.Values(faults), func(a, b fault) int { return a.start.Compare(b.start) })
	var gap time.Duration
	var from, to time.Time
	for i := 1; i < len(grants); i++ {
		if d := grants[i].Sub(grants[i-1]); d > gap {
			gap, from, to = d, grants[i-1], grants[i]
		}
	}
	var during []string
	for _, f := range faults {
		if f.start.Before(to) && !f.end.Before(from) {
			during = append(during, f.what)
		}
	}
	t.Logf("%d grants, %d faults; longest gap without a grant %v, %s–%s (during: %s)", len(grants), len(faults), gap.Round(time.Millisecond),
		off(from), off(to), strings.Join(during, ", "))
	for _, f := range faults {
		next := func(after time.Time) string {
			for _, g := range grants {
				if g.After(after) {
					return g.Sub(after).Round(time.Millisecond).String()
				}
			}
			return "none"
		}
		line := fmt.Sprintf("%s at %s: next grant %s after it began", f.what, off(f.start), next(f.start))
		if f.end.After(f.start) {
			line += fmt.Sprintf(", %s after it ended", next(f.end))
		}
		t.Log(line)
	}
}

// longestStall is the longest stretch without a grant that begins between
// from and until: from from (or a grant) to the next grant.
func longestStall(leases []history.Lease, from, until time.Time) (time.Duration, time.Time) {
	prev := from
	var worst time.Duration
	var at time.Time
	for _, l := range leases { // in grant order
		g := time.Unix(0, l.Granted)
		if !g.After(from) {
			continue
		}
		if d := g.Sub(prev); d > worst {
			worst, at = d, prev
		}
		prev = g
		if g.After(until) {
			return worst, at
		}
	}
	// No grant after until: the stall lasts until now (every loop ended).
	return max(worst, time.Since(prev)), prev
}

// truncated is the report with at most n violations.
func truncated(rep history.Report, n int) string {
	if len(rep.Violations) > n {
		more := len(rep.Violations) - n
		rep.Violations = rep.Violations[:n]
		return fmt.Sprintf("%s\n  … and %d more", rep, more)
	}
	return rep.String()
}

// linesSince returns the lines from index from on and the index after
// them.
func (p *clusterProc) linesSince(from int) ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	from = min(from, len(p.lines))
	return append([]string(nil), p.lines[from:]...), len(p.lines)
}

// pause stops the process with SIGSTOP. Its sockets stay open, so the
// kernel still accepts TCP connections to it: to its peers it looks alive
// but answers nothing. Cleanup resumes a paused process before stopping
// or killing it.
func (p *clusterProc) pause() {
	p.t.Helper()
	p.paused.Store(true) // first, so that a cleanup running now resumes it
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGSTOP), "%s: SIGSTOP", p.name)
}
