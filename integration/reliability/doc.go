// Package reliability is Baton's reliability suite: scenarios that run real
// servers and Baton nodes on loopback, inject faults (kill -9 and restart,
// SIGSTOP, partitions through a TCP proxy, compaction, empty restarts),
// record a history of every operation and judge it with a checker after the
// run. Each scenario records its figures (integration/internal/reliability)
// and `make reliability` prints the suite's one summary line.
//
// The scenarios build only with the reliability tag, so `make test` does
// not run them twice: `go test -tags reliability ./integration/reliability`.
// RELIABILITY.md lists them with the figures of the latest run.
package reliability
