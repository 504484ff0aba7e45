package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// process is a server started as a child process. Its stdout and stderr go straight to files
// (the child inherits the descriptors), so no goroutine copies output; the only goroutine is the
// one in Wait, and it ends when the process does.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result; read it only after done is closed
}

// startProcess runs bin with args, appending its stdout and stderr to the named files.
func startProcess(bin string, args []string, dir, stdoutPath, stderrPath string) (*process, error) {
	stdout, err := openLog(stdoutPath)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr := stdout
	if stderrPath != stdoutPath {
		if stderr, err = openLog(stderrPath); err != nil {
			return nil, err
		}
		defer stderr.Close()
	}

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// exited reports whether the process has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() {
	_ = p.cmd.Process.Kill() // fails only if it already exited; Wait below settles both cases
	<-p.done
}

// pid is the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment ago. Another
// process may take one before the server binds it; callers retry with new ports when the first
// start fails.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// errPollTimeout is returned by poll when cond never held.
var errPollTimeout = errors.New("harness: timed out")

// poll calls cond every interval until it returns true or an error, or until timeout passes.
func poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errPollTimeout, timeout)
		}
		time.Sleep(interval)
	}
}

// waitRefused polls until nothing accepts connections on addr: the server's listener is
// gone, so a client sees "connection refused".
func waitRefused(addr string, timeout time.Duration) error {
	err := poll(timeout, 10*time.Millisecond, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return true, nil
		}
		_ = c.Close()
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s still accepts connections: %w", addr, err)
	}
	return nil
}

// logTail returns the last few KiB of each named file, for failure messages.
func logTail(paths ...string) string {
	const max = 4 << 10
	var b strings.Builder
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if st, err := f.Stat(); err == nil && st.Size() > max {
			_, _ = f.Seek(st.Size()-max, io.SeekStart)
		}
		data, _ := io.ReadAll(f)
		_ = f.Close()
		if len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", path, strings.TrimRight(string(data), "\n"))
	}
	if b.Len() == 0 {
		return "\n(no server output)"
	}
	return b.String()
}
