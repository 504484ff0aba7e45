package integration

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// errorLine is a log record at ERROR level in a node's stderr (text
// handler).
var errorLine = regexp.MustCompile(`(?m)^.*level=ERROR.*$`)

// TestClusterQuietShutdown: members leave one after another, as in a
// rolling restart. That is normal operation: no node logs at ERROR level
// for it (protoactor reports a peer's closed connection at ERROR; Baton
// routes those expected records lower).
func TestClusterQuietShutdown(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 3, "-v", "-redis", srv.URL())
	// Traffic between every pair of nodes: each takes a lock whose grain
	// lives on each other node.
	for i, p := range procs {
		for j, owner := range procs {
			if i == j {
				continue
			}
			id := fmt.Sprintf("q%d%d", i, j)
			m := p.mark()
			p.send("acquire %s %s 5s", id, lockOwnedBy(t, procs, id, owner.addr))
			p.await(m, "acquired "+id+" ", 30*time.Second)
			p.send("release %s", id)
			p.await(m, "released "+id, 30*time.Second)
		}
	}
	procs[2].stop()
	waitMembers(t, procs[:2], 2, 30*time.Second)
	procs[1].stop()
	waitMembers(t, procs[:1], 1, 30*time.Second)
	procs[0].stop()
	lowered := 0
	for _, p := range procs {
		require.NoError(t, p.waitErr, p.name)
		data, err := os.ReadFile(p.stderr)
		require.NoError(t, err)
		lines := errorLine.FindAllString(string(data), -1)
		for _, l := range lines {
			t.Logf("%s: %s", p.name, l)
		}
		require.Empty(t, lines, "%s logged at ERROR during a normal shutdown", p.name)
		lowered += strings.Count(string(data), `msg="EndpointWriter lost connection"`)
	}
	require.Positive(t, lowered, "the closed connections were logged, below ERROR")
}
