//go:build reliability

package reliability_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/history"
	"github.com/baton-go/baton/integration/internal/reliability"
)

// TestReliabilityPausedHolder: a Baton node process (integration/cmd/
// clusternode) takes a lock and writes with its token; then the whole
// process is frozen with SIGSTOP beyond its TTL. A node of the test
// acquires the lock once the backend let the lease expire and writes with
// its newer token. The frozen process is handed a write of its old token
// while still stopped, so it sends it the instant it runs again — a holder
// paused between checking its lease and writing — and the fenced resource
// must reject it. The history checker judges the whole record.
func TestReliabilityPausedHolder(t *testing.T) {
	for _, kind := range faultBackends {
		t.Run(kind, func(t *testing.T) { runFaultPausedHolder(t, kind) })
	}
}

func runFaultPausedHolder(t *testing.T, kind string) {
	srv := startFaultBackend(t, kind)
	res, err := history.StartResource()
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close() })

	backend := []string{"-redis", "redis://" + srv.addr() + "/0"}
	if kind == backends.BackendEtcd {
		backend = []string{"-etcd", srv.addr()}
	}
	cluster := fmt.Sprintf("paused-%s-%d", kind, time.Now().UnixNano())
	holder := harness.StartNodeProcess(t, "paused-holder", append([]string{"-name", cluster}, backend...)...)
	other := startFaultNode(t, faultSpec(kind, "paused-other-"+kind, srv.addr()))

	const lock = "rel-paused"
	hist := &faultHistory{}
	ev := func(proc, lease string, kind history.Kind) history.Event {
		return history.Event{Process: proc, Lock: lock, Lease: lease, Kind: kind}
	}

	// The process takes the lock (no auto-renewal) and writes once.
	inv := ev(holder.Name(), "h1", history.AcquireInvoked)
	inv.TTL = faultLockTTL
	hist.add(inv)
	holder.Send("acquire h1 %s %v", lock, faultLockTTL)
	line := holder.Await(0, "acquired h1 ", 15*time.Second)
	token, err := strconv.ParseUint(strings.Fields(line)[2], 10, 64)
	require.NoError(t, err, line)
	g := ev(holder.Name(), "h1", history.Granted)
	g.Token, g.TTL = token, faultLockTTL
	hist.add(g)
	write := func(verdict string) {
		t.Helper()
		e := ev(holder.Name(), "h1", history.WriteInvoked)
		e.Token = token
		hist.add(e)
		mark := holder.Mark()
		holder.Send("write h1 %s", res.URL())
		got := holder.Await(mark, "written h1 ", 15*time.Second)
		assert.Equal(t, "written h1 "+verdict, got, "the paused holder's write")
	}
	write("accepted")

	// The lock is really shared: the test's node cannot take it now.
	_, err = other.Locks().TryAcquire(faultCtx(t, 5*time.Second), lock, backends.LockOptions{TTL: faultLockTTL})
	require.ErrorIs(t, err, backends.ErrNotObtained, "the node and the process must contend on one lock")

	paused := time.Now()
	holder.Pause()
	t.Cleanup(holder.Resume) // before Stop, should a require end the test early

	inv = ev("other", "o1", history.AcquireInvoked)
	inv.TTL, inv.Renew = faultLockTTL, true
	hist.add(inv)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	lease, err := other.Locks().Acquire(ctx, lock, backends.LockOptions{TTL: faultLockTTL, AutoRenew: true})
	cancel()
	require.NoError(t, err, "the lock stayed held by a frozen process")
	t.Logf("%s: the test's node got the lock %v after the holder froze (TTL %v)", kind, time.Since(paused).Round(time.Millisecond), faultLockTTL)
	og := ev("other", "o1", history.Granted)
	og.Token, og.TTL = lease.Token(), lease.TTL()
	hist.add(og)
	ow := ev("other", "o1", history.WriteInvoked)
	ow.Token = lease.Token()
	hist.add(ow)
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	ok, err := history.WriteTo(faultCtx(t, 5*time.Second), &http.Client{Transport: tr}, res.URL(),
		history.Write{Process: "other", Lock: lock, Lease: "o1", Token: lease.Token()})
	require.NoError(t, err)
	require.True(t, ok, "the new holder's write was rejected")

	// It stays frozen for a second past its TTL in any case, then gets its
	// write while still stopped and sends it the moment it resumes.
	faultHold(t, time.Until(paused.Add(faultLockTTL+time.Second)))
	e := ev(holder.Name(), "h1", history.WriteInvoked)
	e.Token = token
	hist.add(e)
	mark := holder.Mark()
	holder.Send("write h1 %s", res.URL())
	holder.Resume()
	t.Logf("%s: the holder was frozen for %v", kind, time.Since(paused).Round(time.Millisecond))
	got := holder.Await(mark, "written h1 ", 15*time.Second)
	assert.Equal(t, "written h1 rejected", got, "the fenced resource accepted the paused holder's old token")

	hist.add(ev("other", "o1", history.ReleaseInvoked))
	require.NoError(t, lease.Release(faultCtx(t, 5*time.Second)))
	holder.Send("release h1") // ErrNotHeld, answered as an error line

	rep := history.CheckLocks(append(hist.all(), res.Events()...), nil)
	t.Logf("%s: history: %s", kind, rep)
	reliability.Record(t, reliability.Report{
		Scenario:      "locks-paused-holder/" + kind + "/process",
		Faults:        1,
		Operations:    int(hist.ops.Load()),
		DoubleGrants:  rep.DoubleGrants + rep.TokenRegressions,
		StaleAccepted: rep.StaleWritesAccepted,
	})
}
