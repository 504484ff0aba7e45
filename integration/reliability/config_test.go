//go:build reliability

package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
	"github.com/baton-go/baton/integration/internal/linearize"
	"github.com/baton-go/baton/integration/internal/reliability"
	"github.com/baton-go/baton/runtime"
)

// The config scenario: clients race Get, Set and CompareAndSet on one key
// through a node's config facade while the server is killed, frozen and
// its history cut; then porcupine judges the history and the watch checker
// a prefix watcher's events. docs/reliability-config.md describes it.
const (
	configKey     = "rel/key"
	configPrefix  = "rel/"
	configClients = 5
	// configRunFor is how long the clients run; the faults fall inside it.
	configRunFor = 22 * time.Second
	// configOpTimeout is every call's deadline; a call that returns more
	// than configHangSlack after it counts as a hang.
	configOpTimeout = 2 * time.Second
	configHangSlack = time.Second
	// configCheckTimeout bounds each porcupine search; running out is a
	// failure, not a pass.
	configCheckTimeout = 30 * time.Second
	// configSettle bounds the waits after the run: the final read, the
	// watcher catching up, the clients and the watcher ending.
	configSettle = 30 * time.Second
)

// configTarget is one backend under the scenario: how to point a node at
// it and how to hurt it. The fault functions run on the test goroutine.
type configTarget struct {
	backend string
	spec    runtime.Spec
	// kill is kill -9; start brings the server back on the same port and
	// data. pause and resume are SIGSTOP and SIGCONT.
	kill, start, pause, resume func()
	// cut removes history a watcher that is behind needs (a compaction, a
	// trim of the change log), so that it must resync.
	cut func(t *testing.T)
}

func TestReliabilityConfigRedis(t *testing.T) {
	// appendfsync always: an acknowledged write is on disk, so a kill -9
	// may not lose it. The harness keeps the working dir across restarts.
	srv := harness.StartRedis(t, harness.WithRedisArgs("--appendonly", "yes", "--appendfsync", "always"))
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{srv.Addr()}
	tg := configTarget{
		backend: backends.BackendRedis,
		spec:    runtime.Spec{Redis: &cfg},
		kill:    srv.Stop,
		start:   srv.Start,
		pause:   srv.Pause,
		resume:  srv.Resume,
	}
	tg.spec.Env = "rel-config-redis"
	tg.cut = redisTrim(t, cfg, tg.spec.Env)
	runConfigReliability(t, tg)
}

func TestReliabilityConfigEtcd(t *testing.T) {
	srv := harness.StartEtcdProcess(t)
	cfg := etcd.DefaultConfig()
	cfg.Endpoints = srv.Endpoints()
	tg := configTarget{
		backend: backends.BackendEtcd,
		spec:    runtime.Spec{Etcd: &cfg},
		kill:    srv.Stop,
		start:   srv.Start,
		pause:   srv.Pause,
		resume:  srv.Resume,
		cut:     func(t *testing.T) { etcdCompact(t, srv.Endpoints()) },
	}
	tg.spec.Env = "rel-config-etcd"
	runConfigReliability(t, tg)
}

// runConfigReliability runs the scenario against tg with its faults and
// records the report.
func runConfigReliability(t *testing.T, tg configTarget) {
	cfg := startConfigNode(t, tg)
	r := newConfigRun(t, cfg, cfg)
	r.start()

	// The fault schedule. The holds are the faults' lengths, not waits
	// for something to happen.
	faults, cuts := 0, 0
	cut := func() {
		tg.cut(t)
		faults++
		cuts++
		t.Logf("cut %d at %v", cuts, r.rec.Now().Round(time.Millisecond))
	}
	r.until(3 * time.Second)
	tg.kill()
	faults++
	hold(t, time.Second)
	tg.start()
	// At once after the restart, before the node's watch is back: the
	// watch resumes behind the cut and must resync.
	cut()
	r.until(9 * time.Second)
	tg.pause()
	faults++
	hold(t, 2*time.Second)
	tg.resume()
	r.until(15 * time.Second)
	tg.kill()
	faults++
	hold(t, time.Second)
	tg.start()
	if r.resyncs() == 0 {
		// The watch came back before the first cut; cut again.
		cut()
	}
	r.until(configRunFor)

	out := r.finish()
	if out.resyncs == 0 {
		t.Logf("the watcher never resynced: the node's watch was back before each of the %d cuts", cuts)
	}
	reliability.Record(t, reliability.Report{
		Scenario:   "config-linearizable/" + tg.backend + "/facade",
		Faults:     faults,
		Operations: out.ops,
		Lost:       out.lost(),
		Hangs:      out.hangs,
	})
}

// startConfigNode starts a node whose config center is tg's backend, and
// returns its config facade.
func startConfigNode(t *testing.T, tg configTarget) *runtime.ConfigClient {
	t.Helper()
	spec := tg.spec
	spec.NodeID = "rel-config-" + tg.backend
	spec.Backends.Config = tg.backend
	// Notice a lost backend and find it again quickly, so that the run
	// spends its time on operations rather than on backoff.
	spec.Connector.HealthInterval = 200 * time.Millisecond
	spec.Connector.BackoffMax = 500 * time.Millisecond
	node, err := runtime.New(spec)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, node.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := node.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return node.Config()
}

// hold lets d pass, or less if the test ends.
func hold(t *testing.T, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
	}
}

// idle is hold for the clients: false when ctx ended first.
func idle(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// redisTrim returns a cut for Redis: another writer adds an entry to the
// namespace's change log (under a key the watcher does not watch), then
// the log is trimmed to nothing, so a watch resuming from before that
// entry finds its position gone. The stream's name follows the layout in
// backends/redis/config.go; the cut checks that it exists.
func redisTrim(t *testing.T, cfg redis.Config, env string) func(*testing.T) {
	conn, err := redis.NewConnector(cfg, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, conn.Connect(ctx))
	ns := backends.Namespace{Env: env}
	other, err := redis.NewConfigCenter(conn, backends.ConfigOptions{Namespace: ns})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = other.Close()
		_ = conn.Disconnect(context.Background())
	})
	stream := ns.Prefix(backends.ComponentConfig, runtime.DefaultConfigName) + "{" + runtime.DefaultConfigName + "}:log"
	n := 0
	return func(t *testing.T) {
		t.Helper()
		n++
		value := fmt.Sprintf("cut-%d", n)
		// A server that just started may still be loading its AOF.
		retry(t, "write beside the watched prefix", func(ctx context.Context) error {
			return other.Set(ctx, "other", value)
		})
		retry(t, "trim the change log", func(ctx context.Context) error {
			cl := conn.Client()
			if l, err := cl.XLen(ctx, stream).Result(); err != nil || l == 0 {
				return fmt.Errorf("change log %q: %d entries, %v", stream, l, err)
			}
			return cl.XTrimMaxLen(ctx, stream, 0).Err()
		})
	}
}

// etcdCompact is the cut for etcd: two writes outside Baton's keys move
// the revision on, and the history is compacted up to it, so a watch
// resuming from before them finds its revision compacted.
func etcdCompact(t *testing.T, endpoints []string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	var rev int64
	retry(t, "write outside Baton's keys", func(ctx context.Context) error {
		for range 2 {
			resp, err := cli.Put(ctx, "reliability/cut", "x")
			if err != nil {
				return err
			}
			rev = resp.Header.Revision
		}
		return nil
	})
	retry(t, "compact", func(ctx context.Context) error {
		_, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
		return err
	})
}

// retry calls f until it succeeds, for at most 10s.
func retry(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		hold(t, 5*time.Millisecond)
	}
}

// configRun is one run of the clients and the watcher.
type configRun struct {
	t     *testing.T
	cfg   backends.ConfigCenter // what the clients call
	watch backends.ConfigCenter // what the watcher watches
	rec   *linearize.Recorder
	begin time.Time
	// catchUp bounds the wait for the watcher to reach the final state.
	catchUp time.Duration

	stop    context.CancelFunc // ends the clients
	clients sync.WaitGroup
	busy    atomic.Int32 // clients inside a call

	hangs      atomic.Int32
	mu         sync.Mutex
	unexpected []error
	initial    []backends.ConfigItem
	events     []linearize.Received
	watchEnded chan struct{} // closed when the watch channel closed
	stopWatch  context.CancelFunc
}

// newConfigRun prepares a run whose clients call cfg and whose watcher
// watches through watch (the same facade, unless a test breaks one).
func newConfigRun(t *testing.T, cfg, watch backends.ConfigCenter) *configRun {
	return &configRun{t: t, cfg: cfg, watch: watch, rec: linearize.NewRecorder(),
		catchUp: configSettle, watchEnded: make(chan struct{})}
}

// start opens the watch and starts the clients.
func (r *configRun) start() {
	t := r.t
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var err error
	r.initial, err = r.watch.ListItems(ctx, configPrefix)
	require.NoError(t, err)
	wctx, stopWatch := context.WithCancel(context.Background())
	r.stopWatch = stopWatch
	ch, err := r.watch.WatchWith(wctx, configPrefix, backends.WatchOptions{Prefix: true})
	if err != nil {
		stopWatch()
		require.NoError(t, err)
	}
	go func() {
		defer close(r.watchEnded)
		for ev := range ch {
			r.mu.Lock()
			r.events = append(r.events, linearize.Received{At: r.rec.Now(), Event: ev})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { stopWatch(); <-r.watchEnded })

	r.begin = time.Now()
	cctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	t.Cleanup(func() { stop(); r.clients.Wait() }) // each call ends by its deadline
	seed := uint64(time.Now().UnixNano())
	t.Logf("client seed %d", seed)
	for id := range configClients {
		r.clients.Add(1)
		go func() {
			defer r.clients.Done()
			r.client(cctx, id, rand.New(rand.NewPCG(seed, uint64(id))))
		}()
	}
}

// until lets the run go on until d after it started.
func (r *configRun) until(d time.Duration) { hold(r.t, time.Until(r.begin.Add(d))) }

// resyncs counts the ConfigResync events the watcher received so far.
func (r *configRun) resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Event.Type == backends.ConfigResync {
			n++
		}
	}
	return n
}

// client runs random calls on the key until ctx ends: reads, blind
// writes, read-modify-writes (a Get, then a CompareAndSet on what it
// read) and CompareAndSets on whatever the client saw last. Each value it
// writes is its own, "c<id>-<n>".
func (r *configRun) client(ctx context.Context, id int, rng *rand.Rand) {
	var (
		n     int
		known backends.ConfigItem // what this client last saw; Version 0 = absent
	)
	next := func() string {
		n++
		return fmt.Sprintf("c%d-%d", id, n)
	}
	get := func(ctx context.Context) error {
		op := r.rec.Begin(id, linearize.Get)
		it, err := r.cfg.GetItem(ctx, configKey)
		r.note(r.rec.EndGet(op, it, err))
		switch {
		case err == nil:
			known = it
		case errors.Is(err, backends.ErrNotFound):
			known = backends.ConfigItem{}
		}
		return err
	}
	set := func(ctx context.Context) error {
		op := r.rec.Begin(id, linearize.Set)
		op.Value = next()
		err := r.cfg.Set(ctx, configKey, op.Value)
		r.note(r.rec.EndSet(op, err))
		return err
	}
	cas := func(ctx context.Context) error {
		op := r.rec.Begin(id, linearize.CompareAndSet)
		op.Value = next()
		op.ExpectedValue, op.ExpectedVersion = known.Value, known.Version
		it, err := r.cfg.CompareAndSet(ctx, configKey, op.Value, known.Version)
		r.note(r.rec.EndCompareAndSet(op, it, err))
		if err == nil {
			known = it
		}
		return err
	}
	for ctx.Err() == nil {
		var err error
		switch p := rng.IntN(10); {
		case p < 4:
			err = r.call(id, get)
		case p < 6:
			err = r.call(id, set)
		case p < 9:
			if err = r.call(id, get); err == nil || errors.Is(err, backends.ErrNotFound) {
				err = r.call(id, cas)
			}
		default:
			err = r.call(id, cas)
		}
		// A steady pace keeps the history small enough to search; after an
		// error the client backs off, as a real one would.
		pace := 10*time.Millisecond + time.Duration(rng.Int64N(int64(20*time.Millisecond)))
		if err != nil && !errors.Is(err, backends.ErrNotFound) && !errors.Is(err, backends.ErrConflict) {
			pace = 100*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond)))
		}
		if !idle(ctx, pace) {
			return
		}
	}
}

// call runs f with a deadline of its own and counts a hang when f returns
// more than configHangSlack after it.
func (r *configRun) call(id int, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), configOpTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	r.busy.Add(1)
	err := f(ctx)
	r.busy.Add(-1)
	if late := time.Since(deadline); late > configHangSlack {
		r.hangs.Add(1)
		r.t.Errorf("client %d: a call returned %v after its deadline", id, late.Round(time.Millisecond))
	}
	return err
}

// note keeps an error no call should answer, for finish to report.
func (r *configRun) note(bad error) {
	if bad == nil {
		return
	}
	r.mu.Lock()
	r.unexpected = append(r.unexpected, bad)
	r.mu.Unlock()
}

// configOutcome is what a run found.
type configOutcome struct {
	ops, hangs, resyncs int
	lin                 linearize.Result
	watch               []linearize.Violation
}

// lost is the report's Lost: a rejected history, contradictory versions,
// and every watch violation.
func (o configOutcome) lost() int { return o.lin.Violations() + len(o.watch) }

// finish stops the clients, reads the final state, waits for the watcher
// to reach it, and runs both checkers; failures of the run itself (hangs,
// unexpected errors, a timed-out search) fail the test.
func (r *configRun) finish() configOutcome {
	t := r.t
	r.stop()
	done := make(chan struct{})
	go func() { r.clients.Wait(); close(done) }()
	var out configOutcome
	select {
	case <-done:
	case <-time.After(configOpTimeout + configHangSlack + configSettle):
		stuck := int(r.busy.Load())
		r.hangs.Add(int32(stuck))
		t.Errorf("%d clients never returned from a call", stuck)
	}
	out.hangs = int(r.hangs.Load())
	r.mu.Lock()
	for _, err := range r.unexpected {
		t.Errorf("unexpected error: %v", err)
	}
	r.mu.Unlock()

	// The final state, read once every call has returned: a last Get in
	// the history, and the list the watcher must end at.
	var final []backends.ConfigItem
	retry(t, "final read", func(ctx context.Context) error {
		op := r.rec.Begin(configClients, linearize.Get)
		it, err := r.cfg.GetItem(ctx, configKey)
		_ = r.rec.EndGet(op, it, err)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return err
		}
		final, err = r.watch.ListItems(ctx, configPrefix)
		return err
	})
	caughtUp := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return viewEquals(linearize.Fold(r.initial, r.events), final)
	}
	for deadline := time.Now().Add(r.catchUp); !caughtUp() && time.Now().Before(deadline); {
		hold(t, 10*time.Millisecond)
	}
	r.stopWatch()
	select {
	case <-r.watchEnded:
	case <-time.After(configSettle):
		out.hangs++
		t.Errorf("the watch channel did not close after its context ended")
	}

	ops := r.rec.Ops()
	out.ops = len(ops)
	outcomes := map[string]int{}
	for _, op := range ops {
		outcomes[op.Kind.String()+" "+op.Outcome.String()]++
	}
	t.Logf("calls by outcome: %v", outcomes)
	started := time.Now()
	out.lin = linearize.Check(ops, configCheckTimeout)
	t.Logf("porcupine: %s in %v over %d calls (%d with an open outcome left out)",
		out.lin.Verdict, time.Since(started).Round(time.Millisecond), out.lin.Checked, out.lin.Left)
	switch out.lin.Verdict {
	case porcupine.Unknown:
		t.Errorf("the linearizability search ran out of its %v: no verdict", configCheckTimeout)
	case porcupine.Illegal:
		path := filepath.Join(t.ArtifactDir(), "config-history.html")
		if err := out.lin.Visualize(path); err != nil {
			t.Logf("visualize: %v", err)
		}
		t.Logf("the history is not linearizable; porcupine's view of it: %s (kept with go test -artifacts)", path)
	}
	for _, s := range out.lin.Inconsistent {
		t.Logf("inconsistent versions: %s", s)
	}

	r.mu.Lock()
	events := slices.Clone(r.events)
	r.mu.Unlock()
	for _, ev := range events {
		if ev.Event.Type == backends.ConfigResync {
			out.resyncs++
			t.Logf("resync at %v", ev.At.Round(time.Millisecond))
		}
	}
	out.watch = linearize.CheckWatch(linearize.WatchHistory{
		Initial: r.initial,
		Events:  events,
		Writes:  watchWrites(ops, out.lin.Versions),
		Final:   final,
	})
	for i, v := range out.watch {
		if i == 20 {
			t.Logf("… %d more watch violations", len(out.watch)-i)
			break
		}
		t.Logf("watch violation: %s", v)
	}
	delivered := map[string]bool{}
	for _, ev := range events {
		delivered[ev.Event.Item.Value] = ev.Event.Type == backends.ConfigPut
	}
	late := 0 // writes whose caller gave up, and which took effect anyway
	for _, op := range ops {
		if op.IsWrite() && op.Outcome == linearize.Unknown && delivered[op.Value] {
			late++
		}
	}
	t.Logf("%d calls, %d watch events, %d resyncs, %d writes with an open outcome seen applied, final %v",
		len(ops), len(events), out.resyncs, late, final)
	return out
}

// watchWrites lists the writes of a history for the watch checker, with
// the versions the history saw for facade Sets.
func watchWrites(ops []linearize.Op, versions map[string]uint64) []linearize.Write {
	var ws []linearize.Write
	for _, op := range ops {
		if !op.IsWrite() || op.Outcome == linearize.Conflict {
			continue
		}
		w := linearize.Write{Key: configKey, Value: op.Value, Acked: op.Outcome == linearize.OK, Call: op.Call, Return: op.Return}
		switch {
		case op.Kind == linearize.CompareAndSet && w.Acked:
			w.Version = op.Version
		case w.Acked:
			w.Version = versions[op.Value]
		}
		ws = append(ws, w)
	}
	return ws
}

// viewEquals reports whether a folded view holds exactly items.
func viewEquals(view map[string]backends.ConfigItem, items []backends.ConfigItem) bool {
	if len(view) != len(items) {
		return false
	}
	for _, it := range items {
		if view[it.Key] != it {
			return false
		}
	}
	return true
}
