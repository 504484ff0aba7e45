package etcd_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/integration/harness"
)

// endpoints are the etcd server the examples talk to: one started for the
// test run by TestMain (in a program, the addresses of your etcd cluster).
var endpoints []string

// TestMain starts the examples' server, runs every test and example, and
// then fails the run if any of them left a goroutine behind: every client,
// keep-alive, watch and monitor must be gone once its connector is
// disconnected and its component closed. The server runs in a process of its
// own, so its goroutines are not counted.
func TestMain(m *testing.M) {
	srv, err := harness.LaunchEtcdProcess()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd examples:", err)
		os.Exit(1)
	}
	endpoints = srv.Endpoints()
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd examples:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
