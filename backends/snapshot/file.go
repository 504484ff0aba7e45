package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/baton-go/baton/backends"
)

// file is the on-disk format.
type file struct {
	Format   int        `json:"format"`
	SavedAt  time.Time  `json:"saved_at"`
	Prefixes []string   `json:"prefixes"`
	Items    []fileItem `json:"items"`
}

type fileItem struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

const fileFormat = 1

func (s *Fallback) saveLocked() error {
	f := file{Format: fileFormat, SavedAt: time.Now().UTC()}
	for p := range s.prefixes {
		f.Prefixes = append(f.Prefixes, p)
	}
	slices.Sort(f.Prefixes)
	for _, it := range s.items {
		f.Items = append(f.Items, fileItem{Key: it.Key, Value: it.Value, Version: it.Version})
	}
	slices.SortFunc(f.Items, func(a, b fileItem) int { return strings.Compare(a.Key, b.Key) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, data)
}

func load(path string) (file, error) {
	var f file
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("config snapshot: read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, backends.Invalid("snapshot file", path, "cannot be parsed: "+err.Error())
	}
	if f.Format != fileFormat {
		return f, backends.Invalid("snapshot file", path, fmt.Sprintf("unknown format %d", f.Format))
	}
	return f, nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path, so readers (and a process restarted
// after a crash) see either the old or the new snapshot, never a torn one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; failure here is not worth an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
