package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// TestClusterStopWithBackendGone: the members' only backend is SIGKILLed
// and the members are then stopped, as the cluster example's nodes were
// when the node hosting the embedded etcd went first. Each Stop (and a
// second Stop, which the helper issues) succeeds; the member reports that
// its registration is left to expire with its TTL.
func TestClusterStopWithBackendGone(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	procs := clusterOf(t, 2, "-v", "-etcd", strings.Join(srv.Endpoints(), ","))
	srv.Stop()
	for _, p := range procs {
		began := time.Now()
		mark := p.mark()
		p.stop()
		t.Logf("%s: stopped in %v", p.name, time.Since(began))
		require.NoError(t, p.waitErr, "%s exits cleanly; stderr tail:\n%s", p.name, p.stderrTail())
		p.await(mark, "stopped", time.Second)
		data, err := os.ReadFile(p.stderr)
		require.NoError(t, err)
		assert.Contains(t, string(data), "registration expires with its TTL", "%s reports what it left behind", p.name)
	}
}
