package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as the node program: the demo starts its own executable
// as the nodes, which under go test is this test binary.
func TestMain(m *testing.M) {
	if name := os.Getenv(nodeEnv); name != "" {
		if err := runNode(name, os.Args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// TestDemo runs the whole demo on the embedded default, as
// `go run ./examples/cluster` does.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run("", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"each node sees all three members", "the lock is free again", "All nodes stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "strictly increasing: false") {
		t.Errorf("tokens did not increase:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
