package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clusterNodePkg is the helper command that runs one cluster node per
// process (see integration/cmd/clusternode).
const clusterNodePkg = "./integration/cmd/clusternode"

var clusterNodeBuild struct {
	once sync.Once
	path string
	err  error
}

// clusterNodeBinary builds the helper once per test binary — with -race
// when the tests run with it, so Baton code in the nodes is checked too.
func clusterNodeBinary(t testing.TB) string {
	t.Helper()
	b := &clusterNodeBuild
	b.once.Do(func() { b.path, b.err = buildClusterNode() })
	require.NoError(t, b.err)
	return b.path
}

func buildClusterNode() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "baton-clusternode-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "clusternode-*.tmp")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"build", "-o", tmp.Name()}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, clusterNodePkg)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", clusterNodePkg, err, out.String())
	}
	name := "clusternode"
	if raceEnabled {
		name += "-race"
	}
	path := filepath.Join(dir, name)
	return path, os.Rename(tmp.Name(), path)
}

// clusterProc is one node process, driven through its stdin and read
// through its stdout lines.
type clusterProc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr string
	addr   string

	mu      sync.Mutex
	lines   []string
	at      []time.Time   // when each line was read
	changed chan struct{} // closed and replaced on every new line
	eof     chan struct{} // stdout closed
	exited  chan struct{} // process reaped
	waitErr error

	paused atomic.Bool // SIGSTOPped by pause, not yet resumed
}

// startClusterProc starts a node with the given flags and waits until it
// has joined ("ready").
func startClusterProc(t testing.TB, name string, args ...string) *clusterProc {
	t.Helper()
	t0 := time.Now()
	p := launchClusterProc(t, name, args...)
	line := p.await(0, "ready ", 60*time.Second)
	t.Logf("%s: ready in %v", name, time.Since(t0))
	p.addr = strings.Fields(line)[1]
	return p
}

func launchClusterProc(t testing.TB, name string, args ...string) *clusterProc {
	t.Helper()
	bin := clusterNodeBinary(t)
	p := &clusterProc{t: t, name: name, changed: make(chan struct{}), eof: make(chan struct{}), exited: make(chan struct{})}
	p.stderr = filepath.Join(t.TempDir(), name+".stderr")
	errFile, err := os.Create(p.stderr)
	require.NoError(t, err)
	defer errFile.Close()
	flags := []string{"-node-id", name}
	if os.Getenv("BATON_CLUSTER_TEST_VERBOSE") != "" {
		flags = append(flags, "-v") // node logs in the stderr file, shown on failure
	}
	p.cmd = exec.Command(bin, append(flags, args...)...)
	p.cmd.Stderr = errFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go p.read(stdout)
	go func() {
		<-p.eof
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		t0 := time.Now()
		p.stop()
		t.Logf("%s: stopped in %v", p.name, time.Since(t0))
		p.checkStderr()
	})
	return p
}

func (p *clusterProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.at = append(p.at, time.Now())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	close(p.eof)
}

// send writes one command line.
func (p *clusterProc) send(format string, args ...any) {
	p.t.Helper()
	_, err := fmt.Fprintf(p.stdin, format+"\n", args...)
	require.NoError(p.t, err, "%s: send", p.name)
}

// mark is the number of lines read so far: await(mark, …) looks only at
// later lines.
func (p *clusterProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// await returns the first line from index from on that starts with prefix,
// failing the test after d.
func (p *clusterProc) await(from int, prefix string, d time.Duration) string {
	p.t.Helper()
	line, ok := p.find(from, d, func(l string) bool { return strings.HasPrefix(l, prefix) })
	if !ok {
		p.t.Fatalf("%s: no line %q within %v%s; stdout:\n%s\nstderr tail:\n%s", p.name, prefix, d, p.exitStatus(), p.output(), p.stderrTail())
	}
	return line
}

// exitStatus says how the process ended, if it has ended.
func (p *clusterProc) exitStatus() string {
	select {
	case <-p.exited:
		return fmt.Sprintf(" (the process ended: %v)", p.waitErr)
	case <-time.After(100 * time.Millisecond): // stdout closed just before the exit
		return ""
	}
}

// find waits up to d for a line from index from on that matches.
func (p *clusterProc) find(from int, d time.Duration, match func(string) bool) (string, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for ended := false; ; {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
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
			ended = true // every line is in; look once more
		case <-deadline.C:
			return "", false
		}
	}
}

// lineTime returns when the first line from index from on that starts with
// prefix was read (zero when there is none).
func (p *clusterProc) lineTime(from int, prefix string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; i < len(p.lines); i++ {
		if strings.HasPrefix(p.lines[i], prefix) {
			return p.at[i]
		}
	}
	return time.Time{}
}

// linesFrom returns the lines from index from on that start with prefix.
func (p *clusterProc) linesFrom(from int, prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines[min(from, len(p.lines)):] {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func (p *clusterProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

func (p *clusterProc) stderrTail() string {
	data, _ := os.ReadFile(p.stderr)
	limit := 4000
	if os.Getenv("BATON_CLUSTER_TEST_VERBOSE") != "" {
		limit = 400000
	}
	if len(data) > limit {
		data = data[len(data)-limit:]
	}
	return string(data)
}

// resume sends SIGCONT to a paused process.
func (p *clusterProc) resume() {
	if p.paused.Swap(false) {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *clusterProc) kill() {
	p.resume()
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop asks the node to stop and waits (bounded) for it to exit.
func (p *clusterProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.resume() // a stopped process reads no "stop"
	_, _ = fmt.Fprintln(p.stdin, "stop")
	_ = p.stdin.Close()
	t := time.NewTimer(45 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.t.Errorf("%s: did not stop within 45s; stderr tail:\n%s", p.name, p.stderrTail())
		p.kill()
	}
}

// checkStderr fails the test when the node reported a data race or did not
// exit cleanly after a stop.
func (p *clusterProc) checkStderr() {
	data, _ := os.ReadFile(p.stderr)
	if bytes.Contains(data, []byte("WARNING: DATA RACE")) {
		p.t.Errorf("%s: data race in the node process:\n%s", p.name, string(data))
	}
}

// loopbackAddrs returns n distinct free 127.0.0.1 addresses.
func loopbackAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close() // held until all are chosen: distinct
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}
