package integration

import (
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// TestClusterGetOrLoad: 30 concurrent GetOrLoad calls of one key, 10 on
// each of 3 nodes, run the loader once; every caller gets its value.
func TestClusterGetOrLoad(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 3, "-redis", srv.URL())
	marks := make([]int, len(procs))
	for i, p := range procs {
		marks[i] = p.mark()
	}
	t0 := time.Now()
	defer func() { t.Logf("getorload took %v", time.Since(t0)) }()
	for _, p := range procs {
		p.send("getorload gl profiles user-42 10 300ms %s loads", srv.URL())
	}
	var values []string
	for i, p := range procs {
		done := strings.Fields(p.await(marks[i], "done gl ", 30*time.Second))
		require.Len(t, done, 4, "%s: %v", p.name, done)
		assert.Equal(t, "0", done[2], "%s: failed calls", p.name)
		values = append(values, done[3])
	}
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	loads, err := rc.Get(t.Context(), "loads").Int()
	require.NoError(t, err)
	assert.Equal(t, 1, loads, "the loader ran more than once across the cluster")
	for _, v := range values {
		assert.Equal(t, values[0], v, "every node got the one loaded value")
	}
}

// TestClusterUnknownMessage: a request of a protobuf type the receiving
// node does not know gets an INVALID_ARGUMENT status instead of crashing
// that node (protoactor-go would dereference a nil type there); so does a
// one-way message; the node keeps serving.
func TestClusterUnknownMessage(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 2, "-redis", srv.URL())
	from, to := procs[0], procs[1]
	for _, target := range []string{"baton-cache", "baton-lock", "partition-activator", "no-such-actor"} {
		m := from.mark()
		from.send("unknown u %s %s", to.addr, target)
		line := from.await(m, "status u ", 20*time.Second)
		assert.Contains(t, line, "CODE_INVALID_ARGUMENT", "answer from %s", target)
		assert.Contains(t, line, "baton.test.unknown.Mystery", "the error names the type")
	}
	m := from.mark()
	from.send("unknownsend u %s baton-cache", to.addr)
	from.await(m, "sent u", 10*time.Second)

	m = to.mark()
	to.send("ping p")
	to.await(m, "pong p", 10*time.Second)
	grants, _ := contention(t, procs, srv.URL(), "still-serving", 2, 5, 30*time.Second)
	require.Len(t, grants, 2*2*5)
}
