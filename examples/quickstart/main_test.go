package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTour runs the whole tour on the embedded default, as `make run` does.
func TestTour(t *testing.T) {
	if err := run(""); err != nil {
		t.Fatal(err)
	}
}
