package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// etcdServerPkg is the helper command run by StartEtcdProcess, relative to the module root.
const etcdServerPkg = "./integration/cmd/etcd-server"

// buildTimeout bounds `go build` of the helper; a cold build of the etcd server takes a minute
// or two.
const buildTimeout = 10 * time.Minute

var etcdServerBuild struct {
	once sync.Once
	path string
	err  error
}

// etcdServerBinary builds the helper command once per test binary and returns its path. The
// go build cache makes every build after the first a relink of a few seconds, and building on
// each test binary's first use means the helper never lags behind its source. Each build
// writes a temp name in a directory keyed by the module root and renames it into place, so
// test binaries running in parallel never run a half-written file.
func etcdServerBinary() (string, error) {
	b := &etcdServerBuild
	b.once.Do(func() { b.path, b.err = buildEtcdServer() })
	return b.path, b.err
}

func buildEtcdServer() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("build etcd-server: %w", err)
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "baton-harness-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build etcd-server: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "baton-etcd-server-*.tmp")
	if err != nil {
		return "", fmt.Errorf("build etcd-server: %w", err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", tmp.Name(), etcdServerPkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", etcdServerPkg, root, err, out.String())
	}
	path := filepath.Join(dir, "baton-etcd-server")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("build etcd-server: %w", err)
	}
	return path, nil
}

// goTool returns the go command: the one in PATH (go test puts its own GOROOT/bin first), else
// the one `go env GOROOT` would name, found through $GOROOT.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// moduleRoot finds the directory of the baton go.mod: upwards from this source file, or, when
// the binary was built with -trimpath, from `go env GOMOD` in the working directory (a package
// directory of the module, under go test).
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
			if isBatonModule(dir) {
				return dir, nil
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull || !isBatonModule(filepath.Dir(gomod)) {
		return "", errors.New("cannot find the github.com/baton-go/baton module root (run the tests inside the module)")
	}
	return filepath.Dir(gomod), nil
}

func isBatonModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == "github.com/baton-go/baton"
		}
	}
	return false
}
