package bind

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backends"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type decodeTarget struct {
	Host    string        `yaml:"host"`
	Port    int           `yaml:"port"`
	Timeout time.Duration `yaml:"timeout"`
	Tags    []string      `yaml:"tags"`
	Code    string        `yaml:"code"`
	DB      struct {
		User string `yaml:"user"`
		Pool int    `yaml:"pool"`
	} `yaml:"db"`
}

func TestDecodeBinding(t *testing.T) {
	withDB := func(v decodeTarget, user string, pool int) decodeTarget {
		v.DB.User, v.DB.Pool = user, pool
		return v
	}
	cases := []struct {
		name   string
		values map[string]string
		strict bool
		want   decodeTarget
		errSub string
	}{
		{
			name:   "nothing",
			values: map[string]string{},
			want:   decodeTarget{},
		},
		{
			name: "field keys",
			values: map[string]string{
				"svc/host": "example.org", "svc/port": "8080", "svc/timeout": "1m30s",
				"svc/tags": `["a", "b"]`, "svc/db/user": "admin", "svc/db/pool": "4",
			},
			want: withDB(decodeTarget{Host: "example.org", Port: 8080, Timeout: 90 * time.Second, Tags: []string{"a", "b"}}, "admin", 4),
		},
		{
			name:   "scalar text is kept verbatim for string fields",
			values: map[string]string{"svc/code": "0123", "svc/host": "@not-yaml"},
			want:   decodeTarget{Code: "0123", Host: "@not-yaml"},
		},
		{
			name:   "empty value is the zero value",
			values: map[string]string{"svc/port": "", "svc/host": "h"},
			want:   decodeTarget{Host: "h"},
		},
		{
			name:   "document with field overrides",
			values: map[string]string{"svc": "host: doc\nport: 1\ndb: {user: u, pool: 2}\n", "svc/port": "2", "svc/db/pool": "3"},
			want:   withDB(decodeTarget{Host: "doc", Port: 2}, "u", 3),
		},
		{
			name:   "json document",
			values: map[string]string{"svc": `{"host": "j", "tags": ["x"]}`},
			want:   decodeTarget{Host: "j", Tags: []string{"x"}},
		},
		{
			name:   "whole sub-mapping from one key",
			values: map[string]string{"svc/db": "user: a\npool: 9"},
			want:   withDB(decodeTarget{}, "a", 9),
		},
		{
			name:   "empty path segments are ignored",
			values: map[string]string{"svc//db//user": "x", "svc/": "ignored"},
			want:   withDB(decodeTarget{}, "x", 0),
		},
		{
			name:   "keys outside the base are ignored",
			values: map[string]string{"svcx/port": "9", "svc/port": "1"},
			want:   decodeTarget{Port: 1},
		},
		{
			name:   "unknown keys ignored when lax",
			values: map[string]string{"svc/nope": "1", "svc/port": "1"},
			want:   decodeTarget{Port: 1},
		},
		{
			name:   "unknown keys refused when strict",
			values: map[string]string{"svc/nope": "1"},
			strict: true,
			errSub: "nope",
		},
		{
			name:   "type mismatch",
			values: map[string]string{"svc/port": "eighty"},
			errSub: "eighty",
		},
		{
			name:   "document must be a mapping",
			values: map[string]string{"svc": "- a\n- b"},
			errSub: "mapping",
		},
		{
			name:   "document must parse",
			values: map[string]string{"svc": "a: [1,"},
			errSub: `key "svc"`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode[decodeTarget]("svc", c.values, c.strict)
			if c.errSub != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.errSub)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestDecodeBindingMap(t *testing.T) {
	got, err := decode[map[string]any]("f", map[string]string{"f/a": "1", "f/b/c": "true"}, false)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"a": 1, "b": map[string]any{"c": true}}, got)
}

// newTestBinding builds a binding without a backend to drive apply/reload.
func newTestBinding(t *testing.T, opts Options[decodeTarget]) *Value[decodeTarget] {
	t.Helper()
	b := &Value[decodeTarget]{base: "svc", opts: opts, state: map[string]backends.ConfigItem{}}
	b.cur.Store(&snapshot[decodeTarget]{})
	return b
}

func TestBindingApplyAndReload(t *testing.T) {
	errTooBig := errors.New("too big")
	var changes [][2]decodeTarget
	var errs []error
	b := newTestBinding(t, Options[decodeTarget]{
		Validate: func(v decodeTarget) error {
			if v.Port > 100 {
				return errTooBig
			}
			return nil
		},
		OnChange: func(old, updated decodeTarget) { changes = append(changes, [2]decodeTarget{old, updated}) },
		OnError:  func(err error) { errs = append(errs, err) },
	})
	putEv := func(k, v string, ver uint64) backends.ConfigEvent {
		return backends.ConfigEvent{Type: backends.ConfigPut, Item: backends.ConfigItem{Key: k, Value: v, Version: ver}}
	}

	require.True(t, b.apply(putEv("svc/port", "10", 5)))
	assert.False(t, b.apply(putEv("svcx/port", "99", 6)), "a key outside the binding")
	assert.False(t, b.apply(backends.ConfigEvent{Type: backends.ConfigResync}))
	b.reload()
	assert.Equal(t, 10, b.Current().Port)
	assert.Equal(t, uint64(6), b.Version())
	require.Len(t, changes, 1)
	assert.Equal(t, 0, changes[0][0].Port)

	b.apply(putEv("svc/port", "1000", 7))
	b.reload()
	assert.Equal(t, 10, b.Current().Port, "a rejected value is not installed")
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], errTooBig)
	assert.ErrorIs(t, errs[0], backends.ErrInvalidArgument)
	assert.Len(t, changes, 1)

	b.apply(putEv("svc/port", "20", 8))
	b.apply(putEv("svc/host", "h", 9))
	b.reload()
	require.Len(t, changes, 2)
	assert.Equal(t, 10, changes[1][0].Port, "old is the last good value")
	assert.Equal(t, decodeTarget{Port: 20, Host: "h"}, changes[1][1])

	// Re-writing the same values changes nothing visible.
	assert.False(t, b.apply(putEv("svc/host", "h", 10)))
	require.True(t, b.apply(backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: "svc/host", Version: 11}}))
	assert.False(t, b.apply(backends.ConfigEvent{Type: backends.ConfigDelete, Item: backends.ConfigItem{Key: "svc/host", Version: 12}}), "deleting a missing key")
	b.reload()
	assert.Empty(t, b.Current().Host)
	assert.Len(t, changes, 3)
	assert.Equal(t, map[string]uint64{"svc/port": 8}, b.watchOptions().Known)
	assert.Equal(t, uint64(12), b.watchOptions().FromVersion)
	assert.True(t, b.watchOptions().Prefix)
}

func TestBindRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	_, err := New(ctx, nil, "svc", Options[decodeTarget]{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	var cc backends.ConfigCenter = unusedCenter{} // never called: arguments fail first
	for _, prefix := range []string{"", "/", "a\x00"} {
		_, err = New(ctx, cc, prefix, Options[decodeTarget]{})
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, "prefix %q", prefix)
	}
	_, err = New(ctx, cc, "svc", Options[decodeTarget]{RetryMin: -time.Second})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// unusedCenter is a config center whose methods must never be called
// (each would panic on the nil interface it embeds).
type unusedCenter struct{ backends.ConfigCenter }
