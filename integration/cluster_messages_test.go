package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// TestClusterRemoteMessages: every Baton message type (requests, responses,
// events), sent to every component actor of a member, gets the same answer
// — type, status code and text — whether it comes from that member itself
// (a local send) or from another node (serialized over remoting).
func TestClusterRemoteMessages(t *testing.T) {
	srv := harness.StartRedis(t)
	procs := clusterOf(t, 2, "-redis", srv.URL())
	target, remote := procs[0], procs[1]
	answers := func(p *clusterProc, id string) map[string]string {
		m := p.mark()
		p.send("probe %s %s", id, target.addr)
		p.await(m, "done "+id, 60*time.Second)
		out := map[string]string{}
		for _, l := range p.linesFrom(m, "probe "+id+" ") {
			f := strings.SplitN(l, " ", 5) // probe id actor type rest
			require.Len(t, f, 5, "line %q", l)
			out[f[2]+" "+f[3]] = f[4]
		}
		return out
	}
	local := answers(target, "l")
	remoteAnswers := answers(remote, "r")
	require.NotEmpty(t, local)
	assert.Len(t, remoteAnswers, len(local))
	codes := map[string]int{}
	for _, v := range local {
		codes[strings.Fields(v)[1]]++
	}
	t.Logf("%d answers, by code: %v", len(local), codes)
	for k, want := range local {
		assert.Equal(t, want, remoteAnswers[k], "answer to %s", k)
	}
}
