package linearize_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a check leaves a goroutine behind (porcupine
// searches in goroutines of its own).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
