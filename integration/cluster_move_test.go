package integration

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime/cluster"
)

// clusterBackends are the backends the cluster move tests run on, each as
// the flags of a node and a server started for the test.
func clusterBackends(t *testing.T) map[string]func(t *testing.T) []string {
	return map[string]func(t *testing.T) []string{
		backends.BackendRedis: func(t *testing.T) []string { return []string{"-redis", harness.StartRedis(t).URL()} },
		backends.BackendEtcd: func(t *testing.T) []string {
			return []string{"-etcd", strings.Join(harness.StartEtcd(t).Endpoints(), ",")}
		},
	}
}

// lockMovingTo returns a lock name whose grain lives on one of procs now
// and moves to the member at addr once it joins.
func lockMovingTo(t *testing.T, procs []*clusterProc, joinerID, addr string) (name, from string) {
	t.Helper()
	var before []cluster.Member
	for _, p := range procs {
		before = append(before, cluster.Member{ID: p.name, Address: p.addr, Kinds: []string{cluster.KindLock}})
	}
	after := append(before[:len(before):len(before)], cluster.Member{ID: joinerID, Address: addr, Kinds: []string{cluster.KindLock}})
	ns := backends.Namespace{Env: "test"}
	for i := range 1000 {
		name := fmt.Sprintf("moving-%d", i)
		if cluster.LockOwner(after, ns, name) == addr {
			return name, cluster.LockOwner(before, ns, name)
		}
	}
	t.Fatalf("no lock name moves to %s", addr)
	return "", ""
}

// signalProc sends sig to a node process.
func signalProc(t *testing.T, p *clusterProc, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig), "%s: %v", p.name, sig)
}

// TestClusterGrainMoveKeepsLease: a node joins and a held lock's grain
// moves to it. The holder keeps the lock — nobody else is granted it
// while it holds it — and its release, served by the grain's new
// activation, hands it to the waiter. (Before grains handed leases on,
// the old activation gave the lease up when it stopped and the waiter was
// granted the lock while its holder still used it.)
func TestClusterGrainMoveKeepsLease(t *testing.T) {
	for backend, flags := range clusterBackends(t) {
		t.Run(backend, func(t *testing.T) {
			nodeFlags := flags(t)
			procs := clusterOf(t, 2, nodeFlags...)
			a, b := procs[0], procs[1]
			joinAddr := loopbackAddrs(t, 1)[0]
			name, from := lockMovingTo(t, procs, "node3", joinAddr)
			t.Logf("lock %s: grain on %s, moves to the joiner at %s", name, from, joinAddr)

			m := a.mark()
			a.send("acquire h %s 30s", name)
			held := tokenOf(t, a.await(m, "acquired h ", 10*time.Second))
			mb := b.mark()
			b.send("acquire w %s 30s", name)
			_, early := b.find(mb, 300*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "acquired w ") })
			require.False(t, early, "the waiter was granted a held lock")

			c := startClusterProc(t, "node3", append([]string{"-name", clusterName(t), "-bind", joinAddr}, nodeFlags...)...)
			waitMembers(t, []*clusterProc{a, b, c}, 3, 30*time.Second)
			// Time for the old activation to stop and the waiter to queue
			// at the new one.
			_, double := b.find(mb, 2*time.Second, func(l string) bool { return strings.HasPrefix(l, "acquired w ") })
			require.False(t, double, "the waiter was granted the lock while its holder held it, after the grain moved\n%s:\n%s", b.name, b.output())

			m = a.mark()
			a.send("release h")
			a.await(m, "released h", 10*time.Second)
			tok := tokenOf(t, b.await(mb, "acquired w ", 10*time.Second))
			assert.Greater(t, tok, held, "the waiter's token")
			m = b.mark()
			b.send("release w")
			b.await(m, "released w", 10*time.Second)
		})
	}
}

// TestClusterPausedGrainHost: the node hosting a lock's grain (not its
// holder) is SIGSTOPped. The others stop counting it within SuspectAfter,
// the grain moves, the holder's release reaches the new activation and the
// waiter is granted the lock, long before the holder's TTL and while the
// host is still paused.
func TestClusterPausedGrainHost(t *testing.T) {
	const suspect, ttl = 1500 * time.Millisecond, 30 * time.Second
	for backend, flags := range clusterBackends(t) {
		t.Run(backend, func(t *testing.T) {
			procs := clusterOf(t, 3, append(flags(t), "-suspect-after", suspect.String())...)
			host, a, b := procs[0], procs[1], procs[2]
			name := lockOwnedBy(t, procs, "paused", host.addr)

			m := a.mark()
			a.send("acquire h %s %v", name, ttl)
			held := tokenOf(t, a.await(m, "acquired h ", 10*time.Second))
			mb := b.mark()
			b.send("acquire w %s %v", name, ttl)
			_, early := b.find(mb, 300*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "acquired w ") })
			require.False(t, early, "the waiter was granted a held lock")

			signalProc(t, host, syscall.SIGSTOP)
			paused := time.Now()
			t.Cleanup(func() { _ = host.cmd.Process.Signal(syscall.SIGCONT) })
			m = a.mark()
			a.send("release h")
			a.await(m, "released h", 15*time.Second)
			line := b.await(mb, "acquired w ", 15*time.Second)
			granted := time.Since(paused)
			if testing.Verbose() && os.Getenv("BATON_CLUSTER_TEST_VERBOSE") != "" {
				t.Logf("holder log:\n%s\nwaiter log:\n%s", a.stderrTail(), b.stderrTail())
			}
			t.Logf("granted %v after the grain's host was paused (suspect after %v, TTL %v)", granted.Round(time.Millisecond), suspect, ttl)
			assert.Greater(t, tokenOf(t, line), held, "the waiter's token")
			assert.Less(t, granted, ttl/2, "the lock waited for its TTL: the grain never left the paused host")
			signalProc(t, host, syscall.SIGCONT)
			m = b.mark()
			b.send("release w")
			b.await(m, "released w", 15*time.Second)
		})
	}
}
