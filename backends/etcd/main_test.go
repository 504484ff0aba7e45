package etcd_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// client, keep-alive, watch and monitor must be gone once its connector is
// disconnected and its component closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
