// Package reliability is how the scenarios of Baton's reliability suite
// report their figures: each scenario records one Report, and
// `make reliability` sums them into one line (integration/cmd/reliability-summary).
package reliability

import (
	"encoding/json"
	"os"
	"sync"
	"testing"
)

// EnvReport names the file the scenarios append their reports to (one JSON
// object per line). Unset, Record only logs.
const EnvReport = "BATON_RELIABILITY_REPORT"

// Report is one scenario's figures. The last four must be zero for the
// suite to pass; a scenario also fails its own test when they are not.
type Report struct {
	// Scenario names it: "<area>/<backend>/<path>", e.g. "config-linearizable/etcd/facade".
	Scenario string `json:"scenario"`
	// Faults counts the faults injected (a kill, a pause, a partition, …).
	Faults int `json:"faults"`
	// Operations counts the operations in its history.
	Operations int `json:"operations"`
	// Lost counts acknowledged writes or events missing afterwards, and
	// histories a linearizability check rejected.
	Lost int `json:"lost"`
	// DoubleGrants counts overlapping grants of one lock.
	DoubleGrants int `json:"double_grants"`
	// StaleAccepted counts writes a fenced resource accepted with an old
	// token.
	StaleAccepted int `json:"stale_accepted"`
	// Hangs counts calls that overran their deadline by more than the
	// scenario's bound, or never returned.
	Hangs int `json:"hangs"`
}

// Failed reports whether any of the figures that must be zero is not.
func (r Report) Failed() bool {
	return r.Lost != 0 || r.DoubleGrants != 0 || r.StaleAccepted != 0 || r.Hangs != 0
}

var mu sync.Mutex

// Record logs r, appends it to the file named by EnvReport when set, and
// fails t when r.Failed().
func Record(t testing.TB, r Report) {
	t.Helper()
	line, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("reliability: %v", err)
	}
	t.Logf("reliability report: %s", line)
	if path := os.Getenv(EnvReport); path != "" {
		mu.Lock()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.Write(append(line, '\n'))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		mu.Unlock()
		if err != nil {
			t.Errorf("reliability: write report: %v", err)
		}
	}
	if r.Failed() {
		t.Errorf("reliability: scenario %s: %d lost, %d double grants, %d stale accepted, %d hangs",
			r.Scenario, r.Lost, r.DoubleGrants, r.StaleAccepted, r.Hangs)
	}
}
