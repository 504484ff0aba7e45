package typed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/typed"
)

// TestTyped runs the cases that the cache conformance suite ran for every
// implementation until the codec layer became a package of its own. They
// test this package, not a backend, so they run once, against one real
// Redis; the subtest names are the former case names.
func TestTyped(t *testing.T) {
	srv := startServer(t)
	for _, c := range []struct {
		name string
		run  func(*testing.T, backends.Cache)
	}{
		{"typed-json", typedJSON},
		{"typed-proto", typedProto},
		{"typed-get-or-load", typedGetOrLoad},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, srv.cache(t))
		})
	}
}

// ctxFor bounds one case's calls; it also ends with the test.
func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// profile is the value type of the typed-json case.
type profile struct {
	Name   string            `json:"name"`
	Age    int               `json:"age"`
	Tags   []string          `json:"tags"`
	Labels map[string]string `json:"labels"`
	Raw    []byte            `json:"raw"`
}

func typedJSON(t *testing.T, c backends.Cache) {
	ctx := ctxFor(t)
	tc := typed.New[profile](c, nil)
	want := profile{Name: "ada", Age: 36, Tags: []string{"a", "b"}, Labels: map[string]string{"k": "v"}, Raw: []byte{0, 1, 2}}
	require.NoError(t, tc.Set(ctx, "ada", want, 0))
	got, err := tc.Get(ctx, "ada")
	require.NoError(t, err)
	assert.Equal(t, want, got)

	other := profile{Name: "bob"} // nil fields come back nil (null in JSON)
	require.NoError(t, tc.SetMany(ctx, []typed.Item[profile]{{Key: "bob", Value: other}}))
	many, err := tc.GetMany(ctx, []string{"ada", "bob", "nobody"})
	require.NoError(t, err)
	assert.Equal(t, map[string]profile{"ada": want, "bob": other}, many)

	_, err = tc.Get(ctx, "nobody")
	assert.ErrorIs(t, err, backends.ErrNotFound)

	// Bytes that are not JSON of T fail to decode as an invalid value.
	require.NoError(t, c.Set(ctx, "garbage", []byte{0, 0xff, '{'}, 0))
	_, err = tc.Get(ctx, "garbage")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// typedGetOrLoad: a miss runs the loader and stores its value, encoded; a
// hit does not load; a loader's error is returned and nothing is stored.
func typedGetOrLoad(t *testing.T, c backends.Cache) {
	ctx := ctxFor(t)
	tc := typed.New[profile](c, nil)
	want := profile{Name: "carol", Age: 41}
	loads := 0
	loader := func(context.Context) (profile, error) {
		loads++
		return want, nil
	}
	got, err := tc.GetOrLoad(ctx, "carol", backends.LoadOptions{TTL: time.Minute}, loader)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	got, err = tc.GetOrLoad(ctx, "carol", backends.LoadOptions{TTL: time.Minute}, loader)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, 1, loads, "a hit does not load")
	stored, err := tc.Get(ctx, "carol")
	require.NoError(t, err)
	assert.Equal(t, want, stored, "the loaded value is in the cache")

	boom := errors.New("origin down")
	_, err = tc.GetOrLoad(ctx, "dave", backends.LoadOptions{}, func(context.Context) (profile, error) {
		return profile{}, boom
	})
	require.ErrorIs(t, err, boom)
	_, err = tc.Get(ctx, "dave")
	require.ErrorIs(t, err, backends.ErrNotFound, "a failed load stores nothing")

	_, err = tc.GetOrLoad(ctx, "erin", backends.LoadOptions{TTL: time.Nanosecond}, loader)
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "ttl below the minimum")
	_, err = tc.GetOrLoad(ctx, "bad\x00key", backends.LoadOptions{}, loader)
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "bad key")
	assert.Equal(t, 1, loads)
}

func typedProto(t *testing.T, c backends.Cache) {
	ctx := ctxFor(t)
	tc := typed.New[*structpb.Struct](c, typed.Proto[*structpb.Struct]{})
	want, err := structpb.NewStruct(map[string]any{
		"name":   "ada",
		"age":    36,
		"nested": map[string]any{"ok": true, "list": []any{"x", 1.5, nil}},
		"nul":    "a\x00b",
	})
	require.NoError(t, err)
	require.NoError(t, tc.Set(ctx, "ada", want, 0))
	got, err := tc.Get(ctx, "ada")
	require.NoError(t, err)
	assert.True(t, proto.Equal(want, got), "got %v, want %v", got, want)

	// A second message type through a codec with an explicit constructor.
	wrapped := typed.New[*wrapperspb.BytesValue](c, typed.Proto[*wrapperspb.BytesValue]{
		New: func() *wrapperspb.BytesValue { return new(wrapperspb.BytesValue) },
	})
	require.NoError(t, wrapped.Set(ctx, "bytes", wrapperspb.Bytes([]byte{0, 1, 0}), 0))
	gotBytes, err := wrapped.Get(ctx, "bytes")
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 0}, gotBytes.GetValue())

	_, err = tc.Get(ctx, "nobody")
	assert.ErrorIs(t, err, backends.ErrNotFound)
}
