package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	goruntime "runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-go/baton/backends"
)

// printReport writes the machine, the results table, the subscription memory table and where
// the results stand against the targets of the benchmark issue.
func printReport(w io.Writer, b *bench, machine []string, wall time.Duration) {
	fmt.Fprintln(w, "Machine")
	for _, m := range machine {
		fmt.Fprintln(w, "  "+m)
	}
	fmt.Fprintf(w, "  run: -duration %v -rounds %d, %s, wall time %v, load average at the end %s\n\n",
		b.opts.duration, b.opts.rounds, time.Now().UTC().Format(time.RFC3339), wall.Round(time.Second), loadAverage())

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tbackend\timpl\tcallers\tops/s\tp50 µs\tp99 µs\tallocs/op\tnotes\t")
	prev := ""
	for _, c := range b.cells {
		key := c.Scenario + c.Backend + fmt.Sprint(c.Callers)
		if prev != "" && key != prev {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t")
		}
		prev = key
		var notes []string
		if c.Scenario == "lock.contended" && c.elapsed > 0 {
			notes = append(notes, "acquisitions/s "+formatRate(float64(c.acqs)/c.elapsed.Seconds()))
		}
		if len(c.fromCall) > 0 {
			notes = append(notes, fmt.Sprintf("from the Set call: p50 %s p99 %s",
				formatMicros(percentile(c.fromCall, 50)), formatMicros(percentile(c.fromCall, 99))))
		}
		if c.errs > 0 {
			notes = append(notes, fmt.Sprintf("%d errors", c.errs))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.1f\t%s\t\n", c.Scenario, c.Backend, c.Impl, c.Callers,
			formatRate(c.opsPerSec()), formatMicros(c.percentile(50)), formatMicros(c.percentile(99)), c.allocsPerOp(),
			strings.Join(notes, ", "))
	}
	_ = tw.Flush()

	var mem []*cell
	for _, c := range b.cells {
		if _, ok := c.extra["bytes_per_sub"]; ok {
			mem = append(mem, c)
		}
	}
	if len(mem) > 0 {
		fmt.Fprintln(w, "\nConfig subscriptions (config.watch_fanout set-up; heap + goroutine stacks, after GC)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backend\timpl\tsubscribers\tbytes/sub\tgoroutines/sub\tbackend watches\t")
		for _, c := range mem {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.0f\t\n", c.Backend, c.Impl, c.Callers,
				c.extra["bytes_per_sub"], c.extra["goroutines_per_sub"], c.extra["backend_watches"])
		}
		_ = tw.Flush()
	}

	if lines := targets(b.cells); len(lines) > 0 {
		fmt.Fprintln(w, "\nTargets (reported, never asserted)")
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	for _, err := range b.failed {
		fmt.Fprintln(w, "\nFAILED:", err)
	}
}

func formatRate(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatMicros(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// targets compares the results with the goals of the benchmark issue, for the cells that ran.
func targets(cells []*cell) []string {
	find := func(scenario, backend, impl string, callers int) *cell {
		for _, c := range cells {
			if c.Scenario == scenario && c.Backend == backend && c.Impl == impl && (callers == 0 || c.Callers == callers) && len(c.lat) > 0 {
				return c
			}
		}
		return nil
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	var out []string

	if baton, direct := find("cache.get", "redis", "baton", 64), find("cache.get", "redis", "direct", 64); baton != nil && direct != nil {
		r := baton.opsPerSec() / direct.opsPerSec()
		out = append(out, fmt.Sprintf("cache.get redis 64 callers: baton/direct throughput %.2f× (target ≥ 3×): %s", r, verdict(r >= 3)))
	}
	if baton, ap := find("cache.get", "redis", "baton", 64), find("cache.get", "redis", "goredis-autopipeline", 64); baton != nil && ap != nil {
		r := baton.opsPerSec() / ap.opsPerSec()
		out = append(out, fmt.Sprintf("cache.get redis 64 callers: baton/goredis-autopipeline throughput %.2f× (target ≥ 1×): %s", r, verdict(r >= 1)))
	}
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		if baton, direct := find("cache.get", backend, "baton", 1), find("cache.get", backend, "direct", 1); baton != nil && direct != nil {
			d := baton.percentile(50) - direct.percentile(50)
			out = append(out, fmt.Sprintf("cache.get %s 1 caller: baton p50 − direct p50 = %+.1f µs (target ≤ 30 µs): %s", backend, d, verdict(d <= 30)))
		}
	}
	if baton, mutex := find("lock.contended", "etcd", "baton", 0), find("lock.contended", "etcd", "etcd-mutex", 0); baton != nil && mutex != nil {
		r := baton.percentile(50) / mutex.percentile(50)
		out = append(out, fmt.Sprintf("lock.contended etcd: baton p50 wait / etcd-mutex p50 wait = %.2f (target ≤ 0.10): %s", r, verdict(r <= 0.1)))
	}
	if baton, rs := find("lock.contended", "redis", "baton", 0), find("lock.contended", "redis", "redsync", 0); baton != nil && rs != nil {
		r := baton.opsPerSec() / rs.opsPerSec()
		out = append(out, fmt.Sprintf("lock.contended redis: baton/redsync hand-offs per second %.2f× (target ≥ 1×): %s", r, verdict(r >= 1)))
		out = append(out, fmt.Sprintf("lock.contended redis: baton p99 wait %s µs vs redsync %s µs (target ≤): %s",
			formatMicros(baton.percentile(99)), formatMicros(rs.percentile(99)), verdict(baton.percentile(99) <= rs.percentile(99))))
	}
	for _, backend := range []string{backends.BackendRedis, backends.BackendEtcd} {
		baton, direct := find("config.watch_fanout", backend, "baton", 0), find("config.watch_fanout", backend, "direct", 0)
		if baton == nil || direct == nil {
			continue
		}
		watches := baton.extra["backend_watches"]
		out = append(out, fmt.Sprintf("config.watch_fanout %s %d subscribers: baton backend watches %.0f (target 1): %s",
			backend, baton.Callers, watches, verdict(watches == 1)))
		out = append(out, fmt.Sprintf("config.watch_fanout %s %d subscribers: baton p99 %s µs vs direct %s µs, from Set returning (target ≤): %s",
			backend, baton.Callers, formatMicros(baton.percentile(99)), formatMicros(direct.percentile(99)),
			verdict(baton.percentile(99) <= direct.percentile(99))))
		bp, dp := percentile(baton.fromCall, 99), percentile(direct.fromCall, 99)
		out = append(out, fmt.Sprintf("config.watch_fanout %s %d subscribers: baton p99 %s µs vs direct %s µs, from the Set call (same target): %s",
			backend, baton.Callers, formatMicros(bp), formatMicros(dp), verdict(bp <= dp)))
	}
	return out
}

// describeMachine says what the numbers were measured on.
func describeMachine() []string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	mem := ""
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
				break
			}
		}
		_ = f.Close()
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = " " + strings.TrimSpace(string(b))
	}
	return []string{
		fmt.Sprintf("cpu: %s, %d logical CPUs, GOMAXPROCS %d%s", cpu, goruntime.NumCPU(), goruntime.GOMAXPROCS(0), mem),
		fmt.Sprintf("os: %s/%s%s, %s; load average at the start %s", goruntime.GOOS, goruntime.GOARCH, kernel, goruntime.Version(), loadAverage()),
	}
}

// loadAverage is the 1, 5 and 15 minute load average: other work on the machine shows up in
// every number, so the report says how busy it was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// serverVersion names the server a stack talks to (all on loopback, on the same machine).
func serverVersion(ctx context.Context, s *stack) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch s.backend {
	case backends.BackendRedis:
		info, err := s.rdb.Info(ctx, "server").Result()
		if err != nil {
			return "redis: " + err.Error()
		}
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				return fmt.Sprintf("redis: redis-server %s on %s (process, no persistence)", v, s.addr[0])
			}
		}
		return "redis: version unknown"
	default:
		st, err := s.etcd.Status(ctx, s.addr[0])
		if err != nil {
			return "etcd: " + err.Error()
		}
		return fmt.Sprintf("etcd: etcd %s on %s (process, single member)", st.Version, s.addr[0])
	}
}
