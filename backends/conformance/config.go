package conformance

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// RunConfig runs the config center cases against target.NewConfig. The
// helpers built on any ConfigCenter (backends/layered, backends/bind,
// backends/snapshot) are tested in their own packages, once.
//
// Cases run one at a time: first the ordinary ones, then the fault cases that
// trim history, stop or restart target.Server. A fault case leaves the
// server up and healthy before it returns (also when it fails).
func RunConfig(t *testing.T, target Target) {
	t.Helper()
	require.NotNil(t, target.NewConfig, "conformance: %s has no config factory", target.Name)
	s := configSuite{target: target}
	runCases(t, []testCase{
		{"set-get-delete", false, s.setGetDelete},
		{"versions-increase", false, s.versionsIncrease},
		{"compare-and-set", false, s.compareAndSet},
		{"list-by-prefix", false, s.listByPrefix},
		{"special-keys", false, s.specialKeys},
		{"invalid-args", false, s.invalidArgs},
		{"max-value-size", false, s.maxValueSize},
		{"watch-key", false, s.watchKey},
		{"watch-prefix", false, s.watchPrefix},
		{"watch-resume-from-version", false, s.watchResumeFromVersion},
		{"history-and-rollback", false, s.historyAndRollback},
		{"history-limit", false, s.historyLimit},
		{"history-never-set", false, s.historyNeverSet},
		{"env-isolation", false, s.envIsolation},
		// Fault cases: after every ordinary case.
		{"gap-resync-exact-difference", false, s.gapResync},
		{"watch-continues-after-restart", false, s.watchContinuesAfterRestart},
	})
}

type configSuite struct{ target Target }

func (s configSuite) newConfig(t *testing.T, opts backends.ConfigOptions) backends.ConfigCenter {
	t.Helper()
	cc := s.target.NewConfig(t, opts)
	require.NotNil(t, cc, "the config factory returned nil")
	return cc
}

// fresh builds a config center in an environment of its own.
func (s configSuite) fresh(t *testing.T) backends.ConfigCenter {
	t.Helper()
	return s.newConfig(t, backends.ConfigOptions{Namespace: uniqueNamespace()})
}

// freshReady is fresh for the fault cases: it also waits until the new
// config center reaches the backend, which an earlier fault case may have
// restarted (in a cluster, the member serving this namespace may not have
// noticed the restart yet).
func (s configSuite) freshReady(t *testing.T) backends.ConfigCenter {
	t.Helper()
	cc := s.fresh(t)
	require.True(t, waitHealthy(t, "before "+t.Name(), configHealthy(cc)))
	return cc
}

func setKey(t *testing.T, cc backends.ConfigCenter, key, value string) {
	t.Helper()
	require.NoError(t, cc.Set(ctxFor(t, opTimeout), key, value), "set %q", key)
}

// setItem writes key and returns the stored item (read back for its version).
func setItem(t *testing.T, cc backends.ConfigCenter, key, value string) backends.ConfigItem {
	t.Helper()
	setKey(t, cc, key, value)
	return getItem(t, cc, key)
}

func getItem(t *testing.T, cc backends.ConfigCenter, key string) backends.ConfigItem {
	t.Helper()
	it, err := cc.GetItem(ctxFor(t, opTimeout), key)
	require.NoError(t, err, "get item %q", key)
	return it
}

func delKey(t *testing.T, cc backends.ConfigCenter, key string) {
	t.Helper()
	require.NoError(t, cc.Delete(ctxFor(t, opTimeout), key), "delete %q", key)
}

func requireConfigValue(t *testing.T, cc backends.ConfigCenter, key, want string) {
	t.Helper()
	got, err := cc.GetItem(ctxFor(t, opTimeout), key)
	require.NoError(t, err, "get %q", key)
	require.Equal(t, want, got.Value, "value of %q", key)
}

func requireConfigMissing(t *testing.T, cc backends.ConfigCenter, key string) {
	t.Helper()
	_, err := cc.GetItem(ctxFor(t, opTimeout), key)
	require.ErrorIs(t, err, backends.ErrNotFound, "get item %q", key)
}

func listKeys(t *testing.T, cc backends.ConfigCenter, prefix string) map[string]string {
	t.Helper()
	items, err := cc.ListItems(ctxFor(t, opTimeout), prefix)
	require.NoError(t, err, "list %q", prefix)
	return backends.ConfigValues(items)
}

func watchConfig(t *testing.T, cc backends.ConfigCenter, key string, opts backends.WatchOptions) (*eventLog[backends.ConfigEvent], context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := cc.WatchWith(ctx, key, opts)
	if err != nil {
		cancel()
	}
	require.NoError(t, err, "watch %q %+v", key, opts)
	require.NotNil(t, ch, "watch %q returned a nil channel", key)
	return recordEvents(t, ch, cancel), cancel
}

// ev is a compact, comparable form of a config event for assertions.
type ev struct {
	Type  backends.ConfigEventType
	Key   string
	Value string
}

func (e ev) String() string { return fmt.Sprintf("%s %s=%q", e.Type, e.Key, e.Value) }

func compact(evs []backends.ConfigEvent) []ev {
	out := make([]ev, 0, len(evs))
	for _, e := range evs {
		out = append(out, ev{Type: e.Type, Key: e.Item.Key, Value: e.Item.Value})
	}
	return out
}

func put(key, value string) ev { return ev{Type: backends.ConfigPut, Key: key, Value: value} }
func del(key string) ev        { return ev{Type: backends.ConfigDelete, Key: key} }

// untilPut waits for a Put of key=value and returns the events up to and
// including it.
func untilPut(t *testing.T, l *eventLog[backends.ConfigEvent], key, value string) []backends.ConfigEvent {
	t.Helper()
	evs := l.waitFor(t, opTimeout, fmt.Sprintf("put %s=%q", key, value), func(evs []backends.ConfigEvent) bool {
		return slices.Contains(compact(evs), put(key, value))
	})
	return evs[:slices.Index(compact(evs), put(key, value))+1]
}

// requireIncreasing checks that versions strictly increase along evs and
// that all lie above floor.
func requireIncreasing(t *testing.T, evs []backends.ConfigEvent, floor uint64) {
	t.Helper()
	prev := floor
	for i, e := range evs {
		require.Greater(t, e.Item.Version, prev, "event %d (%s) version; events: %+v", i, compact(evs[i : i+1])[0], evs)
		prev = e.Item.Version
	}
}

// applyConfig folds events into the key → value view a watcher holds.
func applyConfig(view map[string]string, evs []backends.ConfigEvent) map[string]string {
	for _, e := range evs {
		switch e.Type {
		case backends.ConfigPut:
			view[e.Item.Key] = e.Item.Value
		case backends.ConfigDelete:
			delete(view, e.Item.Key)
		}
	}
	return view
}
