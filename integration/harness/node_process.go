package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeCommandPkg is the Baton node command StartNodeProcess runs, relative to the module root.
const nodeCommandPkg = "./integration/cmd/clusternode"

// nodeStopTimeout bounds an orderly stop of a node process before it is killed.
const nodeStopTimeout = 30 * time.Second

var nodeCommandBuild struct {
	once sync.Once
	path string
	err  error
}

// nodeCommandBinary builds the node command once per test binary (without -race: the suites
// that pause and kill nodes judge their histories, not the node's memory accesses).
func nodeCommandBinary() (string, error) {
	b := &nodeCommandBuild
	b.once.Do(func() { b.path, b.err = buildCommand(nodeCommandPkg, "baton-clusternode") })
	return b.path, b.err
}

// buildCommand builds the package pkg of this module into a directory keyed by the module
// root and returns the binary's path; like etcdServerBinary, it writes a temp name first and
// renames it into place, so concurrent test binaries never run a half-written file.
func buildCommand(pkg, name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "baton-harness-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	tmp, err := os.CreateTemp(dir, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", tmp.Name(), pkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, root, err, out.String())
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return path, nil
}

// NodeProcess is a Baton node running as an OS process of its own: the command
// integration/cmd/clusternode, whose package doc lists its flags, the lines it prints and the
// commands it reads. The test sends commands with Send and waits for answers with Await;
// Pause and Resume freeze and thaw the whole process, Kill ends it with SIGKILL.
//
//	p := harness.StartNodeProcess(t, "holder", "-redis", rds.URL())
//	p.Send("acquire a1 orders 2s")
//	line := p.Await(0, "acquired a1 ", 10*time.Second) // "acquired a1 <token>"
//	p.Pause() // the holder stops past its TTL
type NodeProcess struct {
	t      testing.TB
	name   string
	proc   *process
	stdin  io.WriteCloser
	stderr string // path of its stderr file

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
	eof     chan struct{} // stdout closed
}

// StartNodeProcess builds the node command (once per test binary), starts it with
// -node-id name and args, and waits up to a minute for its "ready" line. The process is
// stopped (resumed first, if paused) by a cleanup; the kernel kills it if the test binary
// dies first.
func StartNodeProcess(t testing.TB, name string, args ...string) *NodeProcess {
	t.Helper()
	bin, err := nodeCommandBinary()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	p := &NodeProcess{t: t, name: name, changed: make(chan struct{}), eof: make(chan struct{})}
	p.stderr = filepath.Join(t.TempDir(), name+".stderr")
	errFile, err := os.Create(p.stderr)
	if err != nil {
		t.Fatalf("harness: node %s: %v", name, err)
	}
	defer errFile.Close()
	cmd := exec.Command(bin, append([]string{"-node-id", name}, args...)...)
	cmd.Stderr = errFile
	cmd.SysProcAttr = sysProcAttr()
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("harness: node %s: %v", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("harness: node %s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: node %s: %v", name, err)
	}
	p.proc = &process{cmd: cmd, done: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(p.Stop)
	p.Await(0, "ready ", time.Minute)
	return p
}

// read collects stdout lines; once stdout ends it reaps the process (Wait must follow the
// last read of the pipe).
func (p *NodeProcess) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	close(p.eof)
	p.proc.err = p.proc.cmd.Wait()
	close(p.proc.done)
}

// Name is the node id it was started with.
func (p *NodeProcess) Name() string { return p.name }

// Pid is its process id.
func (p *NodeProcess) Pid() int { return p.proc.pid() }

// Send writes one command line to its stdin. A paused process reads it when it resumes.
func (p *NodeProcess) Send(format string, args ...any) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.stdin, format+"\n", args...); err != nil {
		p.t.Fatalf("harness: node %s: send: %v", p.name, err)
	}
}

// Mark is the number of lines read so far: Await(Mark(), …) looks only at later lines.
func (p *NodeProcess) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Await returns the first line, from index from on, that starts with prefix, waiting up to d;
// it fails the test with the process's output when none comes.
func (p *NodeProcess) Await(from int, prefix string, d time.Duration) string {
	p.t.Helper()
	line, ok := p.Find(from, prefix, d)
	if !ok {
		p.t.Fatalf("harness: node %s: no line %q within %v; stdout:\n%s%s", p.name, prefix, d, p.output(), logTail(p.stderr))
	}
	return line
}

// Find is Await that reports false instead of failing the test.
func (p *NodeProcess) Find(from int, prefix string, d time.Duration) (string, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for ended := false; ; {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.HasPrefix(p.lines[i], prefix) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, true
			}
		}
		from = max(from, len(p.lines))
		ch := p.changed
		p.mu.Unlock()
		if ended {
			return "", false
		}
		select {
		case <-ch:
		case <-p.eof:
			ended = true // every line is in: look once more
		case <-timer.C:
			return "", false
		}
	}
}

func (p *NodeProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Pause freezes the process with SIGSTOP and returns once every thread of it is stopped: it
// keeps its sockets and its state, and neither reads its commands nor sees its timers fire
// until Resume.
func (p *NodeProcess) Pause() {
	p.t.Helper()
	if err := p.proc.signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("harness: node %s: pause: %v", p.name, err)
	}
}

// Resume lets a paused process run again (SIGCONT).
func (p *NodeProcess) Resume() {
	p.t.Helper()
	if err := p.proc.signal(syscall.SIGCONT); err != nil {
		p.t.Fatalf("harness: node %s: resume: %v", p.name, err)
	}
}

// Kill ends the process with SIGKILL and waits until it is reaped.
func (p *NodeProcess) Kill() { p.proc.kill() }

// Stop resumes the process, asks it to stop ("stop" on stdin) and waits up to 30s for it to
// exit, then kills it. Calling it on an ended process does nothing.
func (p *NodeProcess) Stop() {
	if p.proc.exited() {
		return
	}
	_ = p.proc.signal(syscall.SIGCONT)
	_, _ = io.WriteString(p.stdin, "stop\n")
	_ = p.stdin.Close()
	timer := time.NewTimer(nodeStopTimeout)
	defer timer.Stop()
	select {
	case <-p.proc.done:
	case <-timer.C:
		p.t.Errorf("harness: node %s did not stop within %v; killed it%s", p.name, nodeStopTimeout, logTail(p.stderr))
		p.proc.kill()
	}
}
