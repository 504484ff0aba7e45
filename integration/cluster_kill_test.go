package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/runtime/cluster"
)

// lockOwnedBy returns a lock name whose grain lives on the member at addr.
func lockOwnedBy(t *testing.T, procs []*clusterProc, prefix, addr string) string {
	t.Helper()
	var members []cluster.Member
	for _, p := range procs {
		members = append(members, cluster.Member{ID: p.name, Address: p.addr, Kinds: []string{cluster.KindLock}})
	}
	for i := range 1000 {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if cluster.LockOwner(members, backends.Namespace{Env: "test"}, name) == addr {
			return name
		}
	}
	t.Fatalf("no lock name with prefix %q is owned by %s", prefix, addr)
	return ""
}

func tokenOf(t *testing.T, line string) uint64 {
	t.Helper()
	tok, err := strconv.ParseUint(strings.Fields(line)[2], 10, 64)
	require.NoError(t, err, "line %q", line)
	return tok
}

// TestClusterKillHolder: SIGKILL the node holding two locks (auto-renewed,
// TTL 3s). Lock "moved" has its grain on the killed node too: the grain
// reactivates on a survivor and the lock is granted once the dead holder's
// backend lease expired. Lock "kept" has its grain on a survivor, which
// sees the holder die and frees the lock at once. Either way the lock is
// free within its TTL (plus the time to notice), tokens keep increasing,
// only one waiter holds it at a time, and the survivors go on locking.
func TestClusterKillHolder(t *testing.T) {
	const ttl = 3 * time.Second
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 3, "-redis", srv.URL())
	victim, a, b := procs[0], procs[1], procs[2]
	moved := lockOwnedBy(t, procs, "moved", victim.addr)
	kept := lockOwnedBy(t, procs, "kept", a.addr)

	m := victim.mark()
	victim.send("acquire hm %s %v autorenew", moved, ttl)
	victim.send("acquire hk %s %v autorenew", kept, ttl)
	held := map[string]uint64{
		moved: tokenOf(t, victim.await(m, "acquired hm ", 10*time.Second)),
		kept:  tokenOf(t, victim.await(m, "acquired hk ", 10*time.Second)),
	}
	type waiter struct {
		p    *clusterProc
		id   string
		lock string
		mark int
	}
	var waiters []waiter
	for _, lock := range []string{moved, kept} {
		for i, p := range []*clusterProc{a, b} {
			w := waiter{p: p, id: fmt.Sprintf("%s-w%d", lock, i), lock: lock, mark: p.mark()}
			p.send("acquire %s %s %v autorenew", w.id, lock, ttl)
			waiters = append(waiters, w)
		}
	}
	for _, w := range waiters {
		_, granted := w.p.find(w.mark, 200*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "acquired "+w.id+" ") })
		require.False(t, granted, "%s granted while the victim holds %s", w.id, w.lock)
	}

	// Held for more than a TTL: auto-renewal works. Watching the first
	// waiter's output for that long is the hold; the others are checked
	// after it.
	for i, w := range waiters {
		watch := time.Duration(0)
		if i == 0 {
			watch = ttl + time.Second
		}
		_, granted := w.p.find(w.mark, watch, func(l string) bool { return strings.HasPrefix(l, "acquired "+w.id+" ") })
		require.False(t, granted, "%s granted while the victim still renews %s", w.id, w.lock)
	}

	killed := time.Now()
	victim.kill()
	for _, lock := range []string{moved, kept} {
		var ws []waiter
		for _, w := range waiters {
			if w.lock == lock {
				ws = append(ws, w)
			}
		}
		// Exactly one waiter gets the lock first.
		var first, second waiter
		var firstLine string
		require.Eventually(t, func() bool {
			for i, w := range ws {
				if l, ok := w.p.find(w.mark, 0, func(l string) bool { return strings.HasPrefix(l, "acquired "+w.id+" ") }); ok {
					first, second, firstLine = w, ws[1-i], l
					return true
				}
			}
			return false
		}, ttl+4*time.Second, 10*time.Millisecond, "nobody got %s after its holder was killed", lock)
		freed := first.p.lineTime(first.mark, "acquired "+first.id+" ").Sub(killed)
		t.Logf("%s: granted again %v after the kill (ttl %v)", lock, freed.Round(time.Millisecond), ttl)
		// The backend lease of the dead holder may have been renewed just
		// before the kill; noticing the death and reactivating a grain
		// must fit in the TTL, with a little slack for a loaded machine.
		assert.Less(t, freed, ttl+time.Second, "%s: not free within its TTL", lock)
		tok := tokenOf(t, firstLine)
		assert.Greater(t, tok, held[lock], "%s: token after the kill", lock)
		_, double := second.p.find(second.mark, 300*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "acquired "+second.id+" ") })
		require.False(t, double, "%s: granted to two waiters at once\n%s:\n%s\n%s:\n%s", lock, first.p.name, first.p.output(), second.p.name, second.p.output())
		mk := first.p.mark()
		first.p.send("release %s", first.id)
		first.p.await(mk, "released "+first.id, 10*time.Second)
		tok2 := tokenOf(t, second.p.await(second.mark, "acquired "+second.id+" ", 10*time.Second))
		assert.Greater(t, tok2, tok, "%s: token of the second waiter", lock)
		mk = second.p.mark()
		second.p.send("release %s", second.id)
		second.p.await(mk, "released "+second.id, 10*time.Second)
	}

	// The survivors drop the victim and keep working together.
	waitMembers(t, []*clusterProc{a, b}, 2, 15*time.Second)
	grants, _ := contention(t, []*clusterProc{a, b}, srv.URL(), "after-kill", 5, 10, 60*time.Second)
	require.Len(t, grants, 2*5*10)
}
