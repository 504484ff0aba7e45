package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
)

// Run runs every suite whose factory is set on target, one subtest per
// component: cache, lock, election, then discovery and config. Suites run one
// after the other; a suite's t.Run returns only when all of its cases
// (parallel ones included) have finished.
//
// The order matters: discovery and config have fault cases that stop, restart
// or wipe target.Server. They run last, so those restarts can never disturb a
// cache, lock or election case of the same target.
//
// Run fails the test when a suite with a factory, or the whole target, ran
// zero cases — a suite that silently tests nothing must not pass.
func Run(t *testing.T, target Target) {
	t.Helper()
	suites := []struct {
		component string
		enabled   bool
		run       func(*testing.T, Target)
	}{
		{backends.ComponentCache, target.NewCache != nil, RunCache},
		{backends.ComponentLock, target.NewLocker != nil, RunLock},
		{backends.ComponentElection, target.NewElector != nil, RunElection},
		{backends.ComponentDiscovery, target.NewDiscovery != nil, RunDiscovery},
		{backends.ComponentConfig, target.NewConfig != nil, RunConfig},
	}
	var total int64
	for _, s := range suites {
		if !s.enabled {
			continue
		}
		t.Run(s.component, func(t *testing.T) {
			s.run(t, target)
			n := casesStarted(t)
			if n == 0 {
				t.Errorf("conformance: %s: the %s suite ran zero cases", target.Name, s.component)
			}
			total += n
		})
	}
	if total == 0 {
		t.Errorf("conformance: %s: ran zero cases (no factory set, or -run matched nothing)", target.Name)
	}
}

// testCase is one named case of a suite.
type testCase struct {
	name string
	// parallel cases run together once every serial case of the suite has
	// finished (t.Parallel semantics). Timing-sensitive and heavy cases stay
	// serial, so they run alone.
	parallel bool
	run      func(t *testing.T)
}

// started counts, per suite-level *testing.T, how many cases began.
var started sync.Map // *testing.T → *atomic.Int64

func counter(t *testing.T) *atomic.Int64 {
	v, _ := started.LoadOrStore(t, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// casesStarted returns and forgets the number of cases runCases started
// under suite t.
func casesStarted(t *testing.T) int64 {
	v, ok := started.LoadAndDelete(t)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// runCases runs each case as a subtest of t and counts it. Every suite of
// this package (discovery and config included) runs its cases through it,
// which is how Run detects a suite that ran nothing. The count is taken as a
// case starts, before t.Parallel, so parallel cases are counted when Run
// checks.
//
// A case that target.Pending lists under component is skipped with its
// reason (and counted: it is part of the case set); a Pending entry of
// component that names no case fails t, so a stale entry is noticed.
func runCases(t *testing.T, target Target, component string, cases []testCase) {
	t.Helper()
	n := counter(t)
	names := make(map[string]bool, len(cases))
	for _, c := range cases {
		names[c.name] = true
	}
	prefix := component + "/"
	for key := range target.Pending {
		if name, ok := strings.CutPrefix(key, prefix); ok && !names[name] {
			t.Errorf("conformance: %s: Pending names %q, which is no %s case", target.Name, key, component)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n.Add(1)
			if reason, ok := target.Pending[prefix+c.name]; ok {
				t.Skipf("pending on %s: %s", target.Name, reason)
			}
			if c.parallel {
				t.Parallel()
			}
			c.run(t)
		})
	}
}

// uniqueEnv returns a fresh environment name, so that every case works in
// its own key space and cases never see each other's data.
func uniqueEnv() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "cf-" + hex.EncodeToString(b[:])
}

// uniqueNamespace is a Namespace with a fresh Env under the default root.
func uniqueNamespace() backends.Namespace {
	return backends.Namespace{Env: uniqueEnv()}
}

// ctxFor returns a context bounded by d that also ends with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// closed reports whether ch is closed (non-blocking).
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Bounds used by the suites. They are generous because the machine running
// the suite may be small and loaded; the assertions that are about speed say
// so explicitly.
const (
	// opTimeout bounds one ordinary operation.
	opTimeout = 10 * time.Second
	// expiryTTL is the TTL of every expiry case: etcd's minimum lease.
	expiryTTL = 2 * time.Second
	// expiryWait bounds the wait for something with expiryTTL to expire.
	expiryWait = 15 * time.Second
	// tick is the polling interval of bounded waits.
	tick = 20 * time.Millisecond
)
