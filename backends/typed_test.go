package backends_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/baton-go/baton/backends"
)

// memCache is the smallest Cache that lets the codec layer be tested on its
// own; real backends are exercised by the conformance suite.
type memCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemCache() *memCache { return &memCache{m: map[string][]byte{}} }

func (c *memCache) Get(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	if !ok {
		return nil, backends.ErrNotFound
	}
	return v, nil
}

func (c *memCache) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	if err := backends.ValidateKey(key); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = value
	return nil
}

func (c *memCache) Delete(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}

func (c *memCache) Exists(_ context.Context, key string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[key]
	return ok, nil
}

func (c *memCache) Clear(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	return nil
}

func (c *memCache) GetMany(_ context.Context, keys []string) (map[string][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]byte{}
	for _, k := range keys {
		if v, ok := c.m[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func (c *memCache) SetMany(ctx context.Context, items []backends.CacheItem) error {
	for _, it := range items {
		if err := c.Set(ctx, it.Key, it.Value, it.TTL); err != nil {
			return err
		}
	}
	return nil
}

type user struct {
	Name  string   `json:"name"`
	Age   int      `json:"age"`
	Roles []string `json:"roles,omitempty"`
}

func TestTypedJSON(t *testing.T) {
	ctx := t.Context()
	mem := newMemCache()
	users := backends.NewTyped[user](mem, nil) // nil codec = JSON
	assert.Same(t, backends.Cache(mem), users.Cache())

	_, err := users.Get(ctx, "ada")
	require.ErrorIs(t, err, backends.ErrNotFound)

	ada := user{Name: "Ada", Age: 36, Roles: []string{"admin"}}
	require.NoError(t, users.Set(ctx, "ada", ada, time.Minute))
	got, err := users.Get(ctx, "ada")
	require.NoError(t, err)
	assert.Equal(t, ada, got)
	assert.JSONEq(t, `{"name":"Ada","age":36,"roles":["admin"]}`, string(mem.m["ada"]))

	ok, err := users.Exists(ctx, "ada")
	require.NoError(t, err)
	assert.True(t, ok)

	bob := user{Name: "Bob", Age: 7}
	require.NoError(t, users.SetMany(ctx, []backends.TypedItem[user]{{Key: "bob", Value: bob}, {Key: "ada", Value: ada}}))
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
	assert.Empty(t, mem.m)
}

func TestTypedDecodeFailure(t *testing.T) {
	ctx := t.Context()
	mem := newMemCache()
	require.NoError(t, mem.Set(ctx, "bad", []byte("{not json"), 0))
	require.NoError(t, mem.Set(ctx, "good", []byte(`{"name":"x"}`), 0))
	users := backends.NewTyped[user](mem, backends.JSONCodec[user]{})

	_, err := users.Get(ctx, "bad")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `"bad"`)
	_, err = users.GetMany(ctx, []string{"good", "bad"})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)

	// Values JSON cannot encode fail before anything is written.
	chans := backends.NewTyped[chan int](mem, nil)
	require.ErrorIs(t, chans.Set(ctx, "c", make(chan int), 0), backends.ErrInvalidArgument)
	require.ErrorIs(t, chans.SetMany(ctx, []backends.TypedItem[chan int]{{Key: "c", Value: make(chan int)}}), backends.ErrInvalidArgument)
	ok, err := mem.Exists(ctx, "c")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestTypedProto(t *testing.T) {
	ctx := t.Context()
	mem := newMemCache()

	// Without New: the message type is found through protobuf reflection.
	strs := backends.NewTyped[*wrapperspb.StringValue](mem, backends.ProtoCodec[*wrapperspb.StringValue]{})
	require.NoError(t, strs.Set(ctx, "s", wrapperspb.String("hello"), 0))
	got, err := strs.Get(ctx, "s")
	require.NoError(t, err)
	assert.True(t, proto.Equal(wrapperspb.String("hello"), got))

	// With New.
	durs := backends.NewTyped[*durationpb.Duration](mem, backends.ProtoCodec[*durationpb.Duration]{
		New: func() *durationpb.Duration { return new(durationpb.Duration) },
	})
	want := durationpb.New(90 * time.Second)
	require.NoError(t, durs.SetMany(ctx, []backends.TypedItem[*durationpb.Duration]{{Key: "d", Value: want}}))
	many, err := durs.GetMany(ctx, []string{"d"})
	require.NoError(t, err)
	require.Len(t, many, 1)
	assert.True(t, proto.Equal(want, many["d"]))

	// An interface type parameter needs New.
	anyMsg := backends.NewTyped[proto.Message](mem, backends.ProtoCodec[proto.Message]{})
	_, err = anyMsg.Get(ctx, "s")
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	withNew := backends.NewTyped[proto.Message](mem, backends.ProtoCodec[proto.Message]{
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

// failingCache makes every call fail, to show Typed adds nothing to errors
// it did not cause.
type failingCache struct{ *memCache }

var errBoom = errors.New("boom")

func (*failingCache) Get(context.Context, string) ([]byte, error) { return nil, errBoom }
func (*failingCache) GetMany(context.Context, []string) (map[string][]byte, error) {
	return nil, errBoom
}

func TestTypedPassesErrors(t *testing.T) {
	users := backends.NewTyped[user](&failingCache{newMemCache()}, nil)
	_, err := users.Get(t.Context(), "x")
	assert.ErrorIs(t, err, errBoom)
	_, err = users.GetMany(t.Context(), []string{"x"})
	assert.ErrorIs(t, err, errBoom)
}
