//go:build !linux

package harness

import "syscall"

// sysProcAttr is empty where the kernel has no parent-death signal.
func sysProcAttr() *syscall.SysProcAttr { return nil }
