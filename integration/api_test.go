package integration_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateAPI = flag.Bool("update-api", false, "rewrite testdata/api from `go doc -all`")

// publicPackage reports whether an import path is part of Baton's API: not
// internal, not a program, not generated messages (their .proto files are
// their API) — the status package's hand-written errors are.
func publicPackage(path string) bool {
	rel := strings.TrimPrefix(path, "github.com/baton-go/baton/")
	switch {
	case strings.Contains(rel, "internal"),
		strings.HasPrefix(rel, "examples/"),
		strings.HasPrefix(rel, "integration/cmd/"),
		rel == "integration", rel == "integration/bench", rel == "integration/reliability", rel == "messages":
		return false
	case strings.HasPrefix(rel, "messages/"):
		return rel == "messages/status/v1"
	}
	return true
}

// TestPublicAPI keeps the exported surface from growing unnoticed: the
// `go doc -all` text of every public package must equal its golden file
// under testdata/api. After a deliberate change of the API, run
//
//	go test ./integration -run TestPublicAPI -update-api
//
// and review the diff with the change.
func TestPublicAPI(t *testing.T) {
	list, err := exec.Command("go", "list", "github.com/baton-go/baton/...").Output()
	require.NoError(t, err)
	var pkgs []string
	for _, p := range strings.Fields(string(list)) {
		if publicPackage(p) {
			pkgs = append(pkgs, p)
		}
	}
	require.NotEmpty(t, pkgs)
	dir := filepath.Join("testdata", "api")
	golden := func(pkg string) string {
		return filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(pkg, "github.com/baton-go/baton/"), "/", "_")+".txt")
	}
	if *updateAPI {
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	var want []string
	for _, pkg := range pkgs {
		out, err := exec.Command("go", "doc", "-all", pkg).Output()
		require.NoError(t, err, pkg)
		want = append(want, filepath.Base(golden(pkg)))
		if *updateAPI {
			require.NoError(t, os.WriteFile(golden(pkg), out, 0o644))
			continue
		}
		have, err := os.ReadFile(golden(pkg))
		if !assert.NoError(t, err, "%s is a new public package: review it, then run with -update-api", pkg) {
			continue
		}
		assert.True(t, bytes.Equal(have, out),
			"the API of %s changed: review `go doc -all %s` against %s, then run with -update-api", pkg, pkg, golden(pkg))
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var have []string
	for _, e := range entries {
		have = append(have, e.Name())
	}
	slices.Sort(want)
	assert.Equal(t, want, have, "a golden file without its package (or the reverse)")
}
