package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
)

// scenarios in the order they run and are reported.
var scenarios = []string{
	"cache.get", "cache.set",
	"lock.uncontended", "lock.contended",
	"config.watch_fanout",
	"discovery.watch_latency",
}

// runner is one implementation of one scenario on one backend.
type runner struct {
	impl string
	// run measures for about d with the given number of callers.
	run func(ctx context.Context, callers int, d time.Duration) round
	// close releases what the runner holds (optional).
	close func(ctx context.Context) error
	// extra holds figures measured at set-up, reported with every cell of the runner.
	extra map[string]float64
}

type options struct {
	duration    time.Duration
	rounds      int
	callers     []int
	scenarios   []string
	backends    []string
	subscribers int
	jsonPath    string
	verbose     bool
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err = run(ctx, opts, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var callers, scen, back string
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured time of each scenario × backend × implementation × callers cell, split over the rounds")
	fs.IntVar(&o.rounds, "rounds", 4, "rounds per cell; the implementations of a scenario alternate round by round")
	fs.StringVar(&callers, "callers", "1,8,64,256", "comma-separated caller counts for the cache scenarios")
	fs.StringVar(&scen, "scenarios", strings.Join(scenarios, ","), "comma-separated scenarios, or prefixes such as cache or lock")
	fs.StringVar(&back, "backends", "redis,etcd", "comma-separated backends")
	fs.IntVar(&o.subscribers, "subscribers", 1000, "subscribers of config.watch_fanout")
	fs.BoolVar(&o.verbose, "v", false, "print every round's operations and errors to stderr")
	fs.StringVar(&o.jsonPath, "json", "", "also write one JSON object per cell, one per line, to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration <= 0 || o.rounds <= 0 || o.subscribers <= 0 {
		return o, errors.New("-duration, -rounds and -subscribers must be positive")
	}
	for _, f := range splitList(callers) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("-callers: %q is not a positive number", f)
		}
		o.callers = append(o.callers, n)
	}
	for _, f := range splitList(scen) {
		matched := false
		for _, s := range scenarios {
			if (s == f || strings.HasPrefix(s, f+".")) && !slices.Contains(o.scenarios, s) {
				o.scenarios = append(o.scenarios, s)
				matched = true
			} else if s == f || strings.HasPrefix(s, f+".") {
				matched = true
			}
		}
		if !matched {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", f, strings.Join(scenarios, ", "))
		}
	}
	// Keep the canonical order whatever order the flag gave.
	slices.SortFunc(o.scenarios, func(a, b string) int { return slices.Index(scenarios, a) - slices.Index(scenarios, b) })
	for _, f := range splitList(back) {
		if f != backends.BackendRedis && f != backends.BackendEtcd {
			return o, fmt.Errorf("-backends: unknown backend %q", f)
		}
		if !slices.Contains(o.backends, f) {
			o.backends = append(o.backends, f)
		}
	}
	if len(o.callers) == 0 || len(o.scenarios) == 0 || len(o.backends) == 0 {
		return o, errors.New("-callers, -scenarios and -backends must not be empty")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// bench is one run of the program.
type bench struct {
	opts   options
	log    io.Writer // progress
	cells  []*cell
	failed []error
}

func run(ctx context.Context, opts options, stdout, progress io.Writer) (err error) {
	began := time.Now()
	b := &bench{opts: opts, log: progress}

	var jsonOut *os.File
	if opts.jsonPath != "" {
		if jsonOut, err = os.Create(opts.jsonPath); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, jsonOut.Close()) }()
	}

	// The stacks close before the servers they talk to.
	stacks := map[string]*stack{}
	var servers []func() error
	defer func() {
		for _, s := range stacks {
			err = errors.Join(err, s.close(context.WithoutCancel(ctx)))
		}
		for _, closeServer := range servers {
			err = errors.Join(err, closeServer())
		}
	}()
	machine := describeMachine()
	for _, backend := range opts.backends {
		fmt.Fprintf(progress, "starting %s...\n", backend)
		var addrs []string
		switch backend {
		case backends.BackendRedis:
			srv, err := harness.LaunchRedis()
			if err != nil {
				return err
			}
			servers = append(servers, srv.Close)
			addrs = []string{srv.Addr()}
		default:
			srv, err := harness.LaunchEtcdProcess()
			if err != nil {
				return err
			}
			servers = append(servers, srv.Close)
			addrs = srv.Endpoints()
		}
		s, err := newStack(ctx, backend, addrs)
		if err != nil {
			return err
		}
		stacks[backend] = s
		machine = append(machine, serverVersion(ctx, s))
	}

	for _, scenario := range opts.scenarios {
		for _, backend := range opts.backends {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.scenario(ctx, scenario, stacks[backend])
		}
	}

	wall := time.Since(began)
	printReport(stdout, b, machine, wall)
	if jsonOut != nil {
		enc := json.NewEncoder(jsonOut)
		for _, c := range b.cells {
			if err := enc.Encode(c.record()); err != nil {
				return err
			}
		}
	}
	if len(b.failed) > 0 {
		return fmt.Errorf("%d scenario(s) could not run: %w", len(b.failed), errors.Join(b.failed...))
	}
	return nil
}

// scenario sets up the implementations of one scenario on one backend and runs its groups.
func (b *bench) scenario(ctx context.Context, scenario string, s *stack) {
	var runners []*runner
	var err error
	callers := []int{1}
	switch scenario {
	case "cache.get", "cache.set":
		runners, err = cacheRunners(ctx, s, scenario == "cache.get")
		callers = b.opts.callers
	case "lock.uncontended":
		runners = lockRunners(s, scenario)
	case "lock.contended":
		runners = lockRunners(s, scenario)
		// baton-cluster: three member nodes, waiters queued in the lock grain.
		if cr, cerr := clusterLockRunner(ctx, s, "bench-contended"); cerr == nil {
			runners = append(runners, cr)
		} else {
			fmt.Fprintf(b.log, "%-24s %-5s baton-cluster unavailable: %v\n", scenario, s.backend, cerr)
		}
		callers = []int{contendedCallers}
	case "config.watch_fanout":
		fmt.Fprintf(b.log, "%-24s %-5s subscribing %d × 2...\n", scenario, s.backend, b.opts.subscribers)
		runners, err = fanoutRunners(ctx, s, b.opts.subscribers)
		callers = []int{b.opts.subscribers}
	case "discovery.watch_latency":
		runners, err = discoveryRunners(ctx, s)
	}
	defer func() {
		for _, r := range runners {
			if r.close != nil {
				if err := r.close(context.WithoutCancel(ctx)); err != nil {
					b.fail(fmt.Errorf("%s %s %s: close: %w", scenario, s.backend, r.impl, err))
				}
			}
		}
	}()
	if err != nil {
		b.fail(fmt.Errorf("%s %s: set-up: %w", scenario, s.backend, err))
		return
	}
	for _, n := range callers {
		b.group(ctx, scenario, s.backend, n, runners)
	}
}

func (b *bench) fail(err error) {
	fmt.Fprintln(b.log, "  error:", err)
	b.failed = append(b.failed, err)
}

// group runs every implementation of a scenario with n callers, alternating between them
// round by round after one unmeasured warm-up each.
func (b *bench) group(ctx context.Context, scenario, backend string, n int, runners []*runner) {
	fmt.Fprintf(b.log, "%-24s %-5s callers=%-4d", scenario, backend, n)
	cells := make([]*cell, len(runners))
	for i, r := range runners {
		cells[i] = &cell{Scenario: scenario, Backend: backend, Impl: r.impl, Callers: n, extra: r.extra}
		r.run(ctx, n, b.warmup())
	}
	per := b.opts.duration / time.Duration(b.opts.rounds)
	for range b.opts.rounds {
		for i, r := range runners {
			if ctx.Err() != nil {
				return
			}
			m0 := mallocs()
			res := r.run(ctx, n, per)
			if b.opts.verbose {
				fmt.Fprintf(b.log, "\n    round: %s ops=%d errors=%d", r.impl, res.ops, res.errs)
				if res.firstErr != nil {
					fmt.Fprintf(b.log, " (%v)", res.firstErr)
				}
			}
			cells[i].add(res, mallocs()-m0)
		}
	}
	for _, c := range cells {
		fmt.Fprintf(b.log, "  %s %s", c.Impl, formatRate(c.opsPerSec()))
		if c.errs > 0 {
			fmt.Fprintf(b.log, " (%d errors: %v)", c.errs, c.firstErr)
		}
	}
	fmt.Fprintln(b.log)
	b.cells = append(b.cells, cells...)
}

// warmup is the unmeasured run before a group's rounds: long enough to fill connection pools
// and start background machinery, short next to the measurement.
func (b *bench) warmup() time.Duration {
	return min(b.opts.duration/10, 250*time.Millisecond)
}

// record is one JSON line.
type record struct {
	Scenario    string   `json:"scenario"`
	Backend     string   `json:"backend"`
	Impl        string   `json:"impl"`
	Callers     int      `json:"callers"`
	OpsPerSec   float64  `json:"ops_per_sec"`
	P50         float64  `json:"p50_us"`
	P99         float64  `json:"p99_us"`
	AllocsPerOp float64  `json:"allocs_per_op"`
	Samples     int      `json:"samples"`
	Errors      int64    `json:"errors,omitempty"`
	Acqs        float64  `json:"acquisitions_per_sec,omitempty"`
	Error       string   `json:"error,omitempty"`
	BytesPerSub *float64 `json:"bytes_per_sub,omitempty"`
	GorPerSub   *float64 `json:"goroutines_per_sub,omitempty"`
	Watches     *float64 `json:"backend_watches,omitempty"`
	CallP50     *float64 `json:"p50_from_set_call_us,omitempty"`
	CallP99     *float64 `json:"p99_from_set_call_us,omitempty"`
}

func (c *cell) record() record {
	r := record{
		Scenario: c.Scenario, Backend: c.Backend, Impl: c.Impl, Callers: c.Callers,
		OpsPerSec: round2(c.opsPerSec()), P50: round2(c.percentile(50)), P99: round2(c.percentile(99)),
		AllocsPerOp: round2(c.allocsPerOp()), Samples: len(c.lat), Errors: c.errs,
	}
	if c.firstErr != nil {
		r.Error = c.firstErr.Error()
	}
	if c.Scenario == "lock.contended" && c.elapsed > 0 {
		r.Acqs = round2(float64(c.acqs) / c.elapsed.Seconds())
	}
	get := func(k string) *float64 {
		if v, ok := c.extra[k]; ok {
			v = round2(v)
			return &v
		}
		return nil
	}
	r.BytesPerSub, r.GorPerSub, r.Watches = get("bytes_per_sub"), get("goroutines_per_sub"), get("backend_watches")
	if len(c.fromCall) > 0 {
		p50, p99 := round2(percentile(c.fromCall, 50)), round2(percentile(c.fromCall, 99))
		r.CallP50, r.CallP99 = &p50, &p99
	}
	return r
}

// round2 rounds to two decimals; NaN (no samples) becomes 0, which JSON can carry.
func round2(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*100) / 100
}
