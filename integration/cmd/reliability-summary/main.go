// Command reliability-summary reads the reports the reliability scenarios
// appended to a file (see integration/internal/reliability) and prints the
// suite's one summary line:
//
//	reliability: S scenarios, F faults injected, O operations, 0 lost, 0 double grants, 0 stale accepted, 0 hangs
//
// It exits 1 when any of the last four is not zero, when no scenario
// reported, or when a scenario named in -want did not report.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/baton-go/baton/integration/internal/reliability"
)

func main() {
	list := flag.Bool("list", false, "also print one line per scenario (before the summary)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: reliability-summary [-list] REPORT-FILE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: no reports:", err)
		os.Exit(1)
	}
	defer f.Close()
	var all []reliability.Report
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r reliability.Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: bad report line %q: %v\n", line, err)
			os.Exit(1)
		}
		all = append(all, r)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: read reports:", err)
		os.Exit(1)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Scenario < all[j].Scenario })
	var sum reliability.Report
	for _, r := range all {
		if *list {
			fmt.Printf("  %-48s %3d faults %7d ops  lost %d  double %d  stale %d  hangs %d\n",
				r.Scenario, r.Faults, r.Operations, r.Lost, r.DoubleGrants, r.StaleAccepted, r.Hangs)
		}
		sum.Faults += r.Faults
		sum.Operations += r.Operations
		sum.Lost += r.Lost
		sum.DoubleGrants += r.DoubleGrants
		sum.StaleAccepted += r.StaleAccepted
		sum.Hangs += r.Hangs
	}
	fmt.Printf("reliability: %d scenarios, %d faults injected, %d operations, %d lost, %d double grants, %d stale accepted, %d hangs\n",
		len(all), sum.Faults, sum.Operations, sum.Lost, sum.DoubleGrants, sum.StaleAccepted, sum.Hangs)
	if len(all) == 0 || sum.Failed() {
		os.Exit(1)
	}
}
