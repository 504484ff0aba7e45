package harness

import "syscall"

// sysProcAttr makes the kernel kill a server if the test binary dies before its cleanups run
// (a panic or a -timeout), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
