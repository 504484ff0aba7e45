package integration

import (
	"testing"

	"github.com/baton-go/baton/backends/conformance"
)

// TestConformance runs the conformance suites against every registered
// implementation: TestConformance/<implementation>/<component>/<case>.
// Implementations run one after the other, each against its own server,
// started once for all of its cases.
func TestConformance(t *testing.T) {
	require := func(cond bool, msg string) {
		t.Helper()
		if !cond {
			t.Fatal(msg)
		}
	}
	require(len(targetBuilders) > 0, "integration: no conformance target registered")
	for _, b := range targetBuilders {
		t.Run(b.name, func(t *testing.T) {
			target := b.build(t)
			if target.Name != b.name {
				t.Fatalf("integration: target registered as %q is named %q", b.name, target.Name)
			}
			conformance.Run(t, target)
		})
	}
}
