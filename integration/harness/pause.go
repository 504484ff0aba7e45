package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// errPauseUnsupported is the cause when a server cannot be frozen: it runs inside the test
// process (StartEtcd) or in a container.
var errPauseUnsupported = errors.New("pause needs a server in its own local process (StartRedis, StartEtcdProcess)")

// signal sends sig to the process; it is a no-op on a process that already exited. After
// SIGSTOP it waits until the kernel reports every thread of the process stopped: kill(2) only
// queues the signal, and a server running on another core could otherwise still answer a
// request sent right after Pause.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		return fmt.Errorf("send %v to pid %d: %w", sig, p.pid(), err)
	}
	if sig != syscall.SIGSTOP {
		return nil
	}
	err := poll(5*time.Second, time.Millisecond, func() (bool, error) {
		return p.exited() || p.stopped(), nil
	})
	if err != nil {
		return fmt.Errorf("pid %d not stopped after SIGSTOP: %w", p.pid(), err)
	}
	return nil
}

// stopped reports whether every thread of the process is in the stopped state, as
// /proc/<pid>/task/<tid>/stat says. Where there is no /proc it reports true: the signal was
// sent, and there is nothing better to wait on.
func (p *process) stopped() bool {
	dir := fmt.Sprintf("/proc/%d/task", p.pid())
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) && runtime.GOOS != "linux"
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return false
		}
		if state := stat[i+2]; state != 'T' && state != 't' {
			return false
		}
	}
	return len(tasks) > 0
}

// Pause freezes the server with SIGSTOP: it keeps its sockets, the kernel still accepts
// connections and buffers what clients send, but nothing is answered until Resume (SIGCONT).
// That is a stalled server, not a dead one — what a long GC pause, a swapped-out host or a
// stopped VM looks like to clients. Pause on a stopped or paused server does nothing; Stop
// works on a paused server.
func (r *Redis) Pause() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.signalLocked(syscall.SIGSTOP); err != nil {
		r.t.Fatalf("harness: redis pause: %v", err)
	}
}

// Resume lets a paused server run again (SIGCONT); it does nothing on a server that is not
// paused.
func (r *Redis) Resume() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.signalLocked(syscall.SIGCONT); err != nil {
		r.t.Fatalf("harness: redis resume: %v", err)
	}
}

func (r *Redis) signalLocked(sig syscall.Signal) error {
	if r.ctr != nil {
		return errPauseUnsupported
	}
	if r.proc == nil {
		return nil
	}
	return r.proc.signal(sig)
}

// Pause freezes a StartEtcdProcess server with SIGSTOP, like Redis.Pause. It fails the test
// for an embedded server (StartEtcd), which cannot be frozen without freezing the test.
func (e *Etcd) Pause() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.signalLocked(syscall.SIGSTOP); err != nil {
		e.t.Fatalf("harness: etcd pause: %v", err)
	}
}

// Resume lets a paused etcd run again (SIGCONT); it does nothing on one that is not paused.
func (e *Etcd) Resume() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.signalLocked(syscall.SIGCONT); err != nil {
		e.t.Fatalf("harness: etcd resume: %v", err)
	}
}

func (e *Etcd) signalLocked(sig syscall.Signal) error {
	if e.ctr != nil || e.inProcess {
		return errPauseUnsupported
	}
	if e.proc == nil {
		return nil
	}
	return e.proc.signal(sig)
}
