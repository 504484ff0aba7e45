package history_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (a resource
// server or its connections).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
