package typed_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/typed"
)

type user struct {
	Name  string   `json:"name"`
	Age   int      `json:"age"`
	Roles []string `json:"roles,omitempty"`
}

func TestTypedJSON(t *testing.T) {
	ctx := t.Context()
	mem := startServer(t).cache(t)
	users := typed.New[user](mem, nil) // nil codec = JSON
	assert.Same(t, mem, users.Unwrap())

	_, err := users.Get(ctx, "ada")
	require.ErrorIs(t, err, backends.ErrNotFound)

	ada := user{Name: "Ada", Age: 36, Roles: []string{"admin"}}
	require.NoError(t, users.Set(ctx, "ada", ada, time.Minute))
	got, err := users.Get(ctx, "ada")
	require.NoError(t, err)
	assert.Equal(t, ada, got)
	raw, err := mem.Get(ctx, "ada")
	require.NoError(t, err)
	assert.JSONEq(t, `{"name":"Ada","age":36,"roles":["admin"]}`, string(raw))

	ok, err := users.Exists(ctx, "ada")
	require.NoError(t, err)
	assert.True(t, ok)

	bob := user{Name: "Bob", Age: 7}
	require.NoError(t, users.SetMany(ctx, []typed.Item[user]{{Key: "bob", Value: bob}, {Key: "ada", Value: ada}}))
	many, err := users.GetMany(ctx, []string{"ada", "bob", "eve"})
	require.NoError(t, err)
	assert.Equal(t, map[string]user{"ada": ada, "bob": bob}, many)

	require.NoError(t, users.Delete(ctx, "bob"))
	ok, err = users.Exists(ctx, "bob")
	require.NoError(t, err)
	assert.False(t, ok)

	// Errors of the underlying cache pass through unchanged.
	require.ErrorIs(t, users.Set(ctx, "", ada, 0), backends.ErrInvalidArgument)

	require.NoError(t, users.Clear(ctx))
	ok, err = mem.Exists(ctx, "ada")
	require.NoError(t, err)
	assert.False(t, ok, "clear reaches the wrapped cache")
}

func TestTypedDecodeFailure(t *testing.T) {
	ctx := t.Context()
	mem := startServer(t).cache(t)
	require.NoError(t, mem.Set(ctx, "bad", []byte("{not json"), 0))
	require.NoError(t, mem.Set(ctx, "good", []byte(`{"name":"x"}`), 0))
	users := typed.New[user](mem, typed.JSON[user]{})

	_, err := users.Get(ctx, "bad")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `"bad"`)
	_, err = users.GetMany(ctx, []string{"good", "bad"})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	// Values JSON cannot encode fail before anything is written.
	chans := typed.New[chan int](mem, nil)
	require.ErrorIs(t, chans.Set(ctx, "c", make(chan int), 0), backends.ErrInvalidArgument)
	require.ErrorIs(t, chans.SetMany(ctx, []typed.Item[chan int]{{Key: "c", Value: make(chan int)}}), backends.ErrInvalidArgument)
	ok, err := mem.Exists(ctx, "c")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestTypedProto(t *testing.T) {
	ctx := t.Context()
	mem := startServer(t).cache(t)

	// Without New: the message type is found through protobuf reflection.
	strs := typed.New[*wrapperspb.StringValue](mem, typed.Proto[*wrapperspb.StringValue]{})
	require.NoError(t, strs.Set(ctx, "s", wrapperspb.String("hello"), 0))
	got, err := strs.Get(ctx, "s")
	require.NoError(t, err)
	assert.True(t, proto.Equal(wrapperspb.String("hello"), got))

	// With New.
	durs := typed.New[*durationpb.Duration](mem, typed.Proto[*durationpb.Duration]{
		New: func() *durationpb.Duration { return new(durationpb.Duration) },
	})
	want := durationpb.New(90 * time.Second)
	require.NoError(t, durs.SetMany(ctx, []typed.Item[*durationpb.Duration]{{Key: "d", Value: want}}))
	many, err := durs.GetMany(ctx, []string{"d"})
	require.NoError(t, err)
	require.Len(t, many, 1)
	assert.True(t, proto.Equal(want, many["d"]))

	// An interface type parameter needs New.
	anyMsg := typed.New[proto.Message](mem, typed.Proto[proto.Message]{})
	_, err = anyMsg.Get(ctx, "s")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	withNew := typed.New[proto.Message](mem, typed.Proto[proto.Message]{
		New: func() proto.Message { return new(wrapperspb.StringValue) },
	})
	msg, err := withNew.Get(ctx, "s")
	require.NoError(t, err)
	assert.True(t, proto.Equal(wrapperspb.String("hello"), msg))

	// Bytes that are not the message fail as invalid argument.
	require.NoError(t, mem.Set(ctx, "junk", []byte{0xff, 0xff, 0xff}, 0))
	_, err = strs.Get(ctx, "junk")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// TestTypedPassesErrors: an error the codec layer did not cause comes back
// as the wrapped cache returned it.
func TestTypedPassesErrors(t *testing.T) {
	srv := startServer(t)
	c := srv.cache(t)
	users := typed.New[user](c, nil)
	require.NoError(t, srv.conn.Disconnect(t.Context()))

	_, want := c.Get(t.Context(), "x")
	require.ErrorIs(t, want, backends.ErrClosed)
	_, err := users.Get(t.Context(), "x")
	assert.ErrorIs(t, err, backends.ErrClosed)
	assert.EqualError(t, err, want.Error())
	_, err = users.GetMany(t.Context(), []string{"x"})
	assert.ErrorIs(t, err, backends.ErrClosed)
}
