package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// The cluster tests run every node as a separate process
// (integration/cmd/clusternode): protoactor's remote.Start replaces gRPC's
// global logger without synchronisation, so two nodes in one process are a
// data race under -race, and SIGKILL needs a process anyway.

// clusterOf starts n member processes on the given backend flags and waits
// until each sees all n.
func clusterOf(t *testing.T, n int, backend ...string) []*clusterProc {
	t.Helper()
	procs := make([]*clusterProc, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			procs[i] = startClusterProc(t, fmt.Sprintf("node%d", i+1), append([]string{"-name", clusterName(t)}, backend...)...)
		})
	}
	wg.Wait()
	for _, p := range procs {
		require.NotNil(t, p)
	}
	waitMembers(t, procs, n, 30*time.Second)
	return procs
}

// clusterName is unique per test, so clusters of different tests sharing
// a backend never see each other.
func clusterName(t *testing.T) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return "c-" + name
}

// waitMembers waits until every process reports n members.
func waitMembers(t *testing.T, procs []*clusterProc, n int, d time.Duration) {
	t.Helper()
	want := fmt.Sprintf("members %d ", n)
	for _, p := range procs {
		require.Eventually(t, func() bool {
			lines := p.linesFrom(0, "members ")
			return len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1]+" ", want)
		}, d, 20*time.Millisecond, "%s never saw %d members; stdout:\n%s", p.name, n, p.output())
	}
}

// grant is one acquisition reported by a contend command.
type grant struct {
	who            string // node/contender
	token          uint64
	sent, granted  time.Time
	node           string
	contender, rnd int
}

func parseGrant(t *testing.T, line string) grant {
	f := strings.Fields(line)
	require.Len(t, f, 8, "grant line %q", line)
	c, _ := strconv.Atoi(f[3])
	r, _ := strconv.Atoi(f[4])
	tok, err := strconv.ParseUint(f[5], 10, 64)
	require.NoError(t, err)
	sent, _ := strconv.ParseInt(f[6], 10, 64)
	granted, _ := strconv.ParseInt(f[7], 10, 64)
	return grant{who: f[2] + "/" + f[3], node: f[2], contender: c, rnd: r, token: tok,
		sent: time.Unix(0, sent), granted: time.Unix(0, granted)}
}

// contention runs contenders×rounds acquisitions of one lock on every
// process at once and returns the grants in token order. Every
// acquisition must succeed.
func contention(t *testing.T, procs []*clusterProc, redisURL, lock string, contenders, rounds int, d time.Duration) ([]grant, time.Duration) {
	t.Helper()
	grants, elapsed, failed := contend(t, procs, redisURL, lock, contenders, rounds, d)
	for _, l := range failed {
		t.Errorf("%s", l)
	}
	return grants, elapsed
}

// contend is contention that reports failed acquisitions (a backend that
// is still coming back) instead of failing on them. Mutual exclusion and
// increasing tokens must hold either way.
func contend(t *testing.T, procs []*clusterProc, redisURL, lock string, contenders, rounds int, d time.Duration) ([]grant, time.Duration, []string) {
	t.Helper()
	marks := make([]int, len(procs))
	for i, p := range procs {
		marks[i] = p.mark()
	}
	start := time.Now()
	for _, p := range procs {
		p.send("contend ct %s %d %d 15s %s %s", lock, contenders, rounds, redisURL, lock)
	}
	var grants []grant
	var failed []string
	for i, p := range procs {
		done := strings.Fields(p.await(marks[i], "done ct ", d))
		require.Len(t, done, 5)
		assert.Equal(t, []string{"0", "0"}, done[3:], "%s: overlaps and token regressions", p.name)
		for _, l := range p.linesFrom(marks[i], "grant ct ") {
			grants = append(grants, parseGrant(t, l))
		}
		for _, l := range p.linesFrom(marks[i], "error ct ") {
			failed = append(failed, p.name+": "+l)
		}
		if done[2] != "0" && len(failed) == 0 {
			failed = append(failed, p.name+": "+strings.Join(done, " "))
		}
	}
	elapsed := time.Since(start)
	sort.Slice(grants, func(i, j int) bool { return grants[i].token < grants[j].token })
	return grants, elapsed, failed
}

// maxOvertakes is, over all contenders, the most times one other contender
// was granted the lock between two consecutive grants of the first. Under
// FIFO a contender that re-queues right after its release is passed by each
// other contender at most once.
func maxOvertakes(grants []grant) int {
	last := map[string]int{} // who → index of its last grant
	worst := 0
	for i, g := range grants {
		if j, ok := last[g.who]; ok {
			counts := map[string]int{}
			for _, o := range grants[j+1 : i] {
				counts[o.who]++
				worst = max(worst, counts[o.who])
			}
		}
		last[g.who] = i
	}
	return worst
}

// inversions counts pairs granted against their order of asking, among
// requests asked more than gap apart.
func inversions(grants []grant, gap time.Duration) int {
	n := 0
	for i := range grants {
		for j := i + 1; j < len(grants); j++ {
			// grants[i] was granted first; was grants[j] asked well before?
			if grants[j].sent.Add(gap).Before(grants[i].sent) && grants[j].granted.After(grants[j].sent) {
				n++
			}
		}
	}
	return n
}

func waitsP99(grants []grant) time.Duration {
	waits := make([]time.Duration, 0, len(grants))
	for _, g := range grants {
		waits = append(waits, g.granted.Sub(g.sent))
	}
	slices.Sort(waits)
	return waits[len(waits)*99/100]
}

// TestClusterLockContention: 3 nodes × 10 contenders × 30 rounds on one
// lock. Inside the lock each contender updates a counter and the last
// token in Redis non-atomically: the counter ends exact (mutual
// exclusion), no token is ever at or below the previous holder's, and the
// grants follow the order of the requests across the nodes (FIFO).
func TestClusterLockContention(t *testing.T) {
	const nodes, contenders, rounds = 3, 10, 30
	srv := harness.StartRedis(t)
	procs := clusterOf(t, nodes, "-redis", srv.URL())

	grants, elapsed := contention(t, procs, srv.URL(), "shared", contenders, rounds, 90*time.Second)
	require.Len(t, grants, nodes*contenders*rounds)

	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	counter, err := rc.Get(t.Context(), "shared").Int()
	require.NoError(t, err)
	assert.Equal(t, nodes*contenders*rounds, counter, "increments were lost: holders overlapped")
	for i := 1; i < len(grants); i++ {
		require.Greater(t, grants[i].token, grants[i-1].token, "tokens are unique and increasing")
	}
	byNode := map[string]int{}
	for _, g := range grants {
		byNode[g.node]++
	}
	assert.Len(t, byNode, nodes, "every node was granted the lock")
	over := maxOvertakes(grants)
	inv := inversions(grants, 100*time.Millisecond)
	t.Logf("%d grants in %v (%.0f hand-offs/s), p99 wait %v, max overtakes by one contender %d, inversions %d",
		len(grants), elapsed.Round(time.Millisecond), float64(len(grants))/elapsed.Seconds(), waitsP99(grants), over, inv)
	// Strict FIFO gives at most 1; a goroutine descheduled between its release
	// and its next request (2 cores, 30 contenders) lets one more by. A
	// non-FIFO grant order passes contenders many times.
	assert.LessOrEqual(t, over, 3, "a contender was passed repeatedly by the same other contender: not FIFO")
	assert.Zero(t, inv, "requests asked 100ms apart were granted out of order")
}

// TestClusterLockFIFOAcrossNodes: waiters queued one after the other from
// alternating nodes are granted in exactly that order.
func TestClusterLockFIFOAcrossNodes(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 3, "-redis", srv.URL())
	holder := procs[0]
	m := holder.mark()
	holder.send("acquire h fifo 15s")
	holder.await(m, "acquired h ", 10*time.Second)

	type waiter struct {
		p    *clusterProc
		id   string
		mark int
	}
	var order []waiter
	for i := range 6 {
		p := procs[(i+1)%3]
		w := waiter{p: p, id: fmt.Sprintf("w%d", i), mark: p.mark()}
		p.send("acquire %s fifo 15s", w.id)
		// The request is queued (not granted) and has reached the grain
		// before the next one is sent.
		_, granted := p.find(w.mark, 150*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "acquired "+w.id+" ") })
		require.False(t, granted, "%s was granted while the lock is held", w.id)
		order = append(order, w)
	}
	m = holder.mark()
	holder.send("release h")
	holder.await(m, "released h", 10*time.Second)
	var tokens []uint64
	for i, w := range order {
		line := w.p.await(w.mark, "acquired "+w.id+" ", 10*time.Second)
		tok, _ := strconv.ParseUint(strings.Fields(line)[2], 10, 64)
		tokens = append(tokens, tok)
		// Nobody after it in the queue holds the lock yet.
		for _, later := range order[i+1:] {
			_, early := later.p.find(later.mark, 0, func(l string) bool { return strings.HasPrefix(l, "acquired "+later.id+" ") })
			require.False(t, early, "%s was granted before %s", later.id, w.id)
		}
		m := w.p.mark()
		w.p.send("release %s", w.id)
		w.p.await(m, "released "+w.id, 10*time.Second)
	}
	assert.True(t, slices.IsSorted(tokens), "tokens increase in grant order: %v", tokens)
}

var _ = context.Background
