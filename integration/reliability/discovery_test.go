//go:build reliability

package reliability_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/reliability"
	"github.com/baton-go/baton/runtime"
)

// The discovery scenario's workload and bounds.
const (
	// faultInstances is how many instances are registered, half through
	// each node.
	faultInstances = 20
	// faultRegTTL is every registration's TTL: short, so that a partition
	// longer than it lets the backend expire the cut-off node's instances.
	faultRegTTL = 3 * time.Second
	// faultDiscPartition is how long the registering node is cut off.
	faultDiscPartition = faultRegTTL + time.Second
	// faultHealBound is how long after a fault ended every registration
	// must be visible again, from both nodes; one still missing then is
	// lost.
	faultHealBound = 15 * time.Second
)

// TestReliabilityDiscovery: two nodes register 20 instances of one
// service, ten each; node A reaches the backend through a proxy. After
// each fault — kill -9 and restart of the backend, a restart with empty
// data (Redis: its AOF deleted; etcd cannot lose its data and keep its
// cluster), a partition of A longer than the registration TTL — the
// scenario measures how long it takes until Discover on both nodes returns
// every instance again. An instance still missing after faultHealBound is
// lost. The registrations are never made again by the test: bringing them
// back is the nodes' job.
func TestReliabilityDiscovery(t *testing.T) {
	for _, kind := range faultBackends {
		t.Run(kind, func(t *testing.T) { runFaultDiscovery(t, kind) })
	}
}

func runFaultDiscovery(t *testing.T, kind string) {
	srv := startFaultBackend(t, kind)
	px := harness.StartProxy(t, srv.addr())
	a := startFaultNode(t, faultSpec(kind, "disc-a-"+kind, px.Addr()))
	b := startFaultNode(t, faultSpec(kind, "disc-b-"+kind, srv.addr()))
	nodes := []*runtime.Node{a, b}

	const service = "rel-disc"
	var want []string
	for i := range faultInstances {
		id := fmt.Sprintf("%s-%02d", service, i)
		want = append(want, id)
		svc := backends.ServiceInfo{ID: id, Name: service, Address: fmt.Sprintf("127.0.0.1:%d", 20000+i)}
		require.NoError(t, nodes[i%2].Discovery().Register(faultCtx(t, 10*time.Second), svc, faultRegTTL))
	}
	// missing is what Discover on either node does not return right now
	// (everything, when a Discover fails).
	missingOn := func(nodes ...*runtime.Node) []string {
		var out []string
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			got, err := n.Discovery().Discover(ctx, service)
			cancel()
			seen := map[string]bool{}
			if err == nil {
				for _, s := range got {
					seen[s.ID] = true
				}
			}
			for _, id := range want {
				if !seen[id] && !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
		return out
	}
	missing := func() []string { return missingOn(nodes...) }
	require.True(t, faultWait(10*time.Second, func() bool { return len(missing()) == 0 }), "the registrations never all showed")

	faults, lost, checks := 0, 0, 0
	var worst time.Duration
	worstAfter := ""
	healed := func(what string, from time.Time) {
		faults++
		var left []string
		ok := faultWait(faultHealBound, func() bool {
			checks++
			left = missing()
			return len(left) == 0
		})
		took := time.Since(from)
		if !ok {
			lost += len(left)
			t.Errorf("%s: %d registrations still missing %v after the fault ended: %v", what, len(left), faultHealBound, left)
			return
		}
		t.Logf("%s: every registration visible again %v after the fault ended", what, took.Round(time.Millisecond))
		if took > worst {
			worst, worstAfter = took, what
		}
	}

	srv.restart()
	healed("kill -9 and restart of the backend", time.Now())

	if kind == backends.BackendRedis {
		srv.redis.Wipe()
		srv.redis.Start()
		healed("restart of the backend with empty data", time.Now())
	}

	px.Blackhole(true)
	faultHold(t, faultDiscPartition)
	gone := len(missingOn(b))
	px.Blackhole(false)
	t.Logf("at the end of the partition node B saw %d of node A's %d registrations expired", gone, faultInstances/2)
	healed(fmt.Sprintf("partition of node A for %v (registration TTL %v)", faultDiscPartition, faultRegTTL), time.Now())

	t.Logf("%s: %d faults; slowest heal %v (after the %s); bound %v", kind, faults, worst.Round(time.Millisecond), worstAfter, faultHealBound)
	reliability.Record(t, reliability.Report{
		Scenario:   "discovery/" + kind + "/facade",
		Faults:     faults,
		Operations: faultInstances + 2*checks,
		Lost:       lost,
	})
}
