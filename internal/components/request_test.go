package components_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/components"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
)

// TestRequestErrorText: the errors Request makes name the operation and
// its name once, carry one sentinel, and no Go type names.
func TestRequestErrorText(t *testing.T) {
	sys := newSystem(t)
	ctx := ctxTimeout(t, 5*time.Second)
	get := &cachev1.GetRequest{Name: "sessions", Key: "k"}
	check := func(err error, want string, sentinel error) {
		t.Helper()
		require.ErrorIs(t, err, sentinel)
		assert.Equal(t, want, err.Error())
		assert.NotContains(t, err.Error(), "*", "no Go type names")
		assert.NotContains(t, err.Error(), "actors:", "one prefix")
	}

	_, err := actors.Request[*cachev1.GetResponse](ctx, sys.Root, nil, get)
	check(err, `cache "sessions": get "k": baton: backend unavailable: no actor to ask`, backends.ErrUnavailable)

	_, err = actors.Request[*cachev1.GetResponse](ctx, sys.Root, actor.NewPID(sys.Address(), "nobody"), get)
	check(err, `cache "sessions": get "k": baton: backend unavailable: no actor at nobody`, backends.ErrUnavailable)

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = actors.Request[*configv1.ListResponse](done, sys.Root, actor.NewPID(sys.Address(), "nobody"),
		&configv1.ListRequest{Name: "default", Prefix: "app/"})
	check(err, `config "default": list "app/": context canceled`, context.Canceled)

	// A reply of another type than asked for.
	echo, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*cachev1.GetRequest); ok {
			c.Respond(&connectorv1.StateRequest{})
		}
	}), "echo")
	require.NoError(t, err)
	_, err = actors.Request[*cachev1.GetResponse](ctx, sys.Root, echo, get)
	check(err, `cache "sessions": get "k": baton: invalid argument: reply "baton.connector.v1.StateRequest": not the reply this request expects`,
		backends.ErrInvalidArgument)

	// An actor answering a message it does not serve names it by its proto name.
	srv := startServer(t, backends.BackendRedis)
	cachePID, err := sys.Root.SpawnNamed(components.NewCacheActorProps(components.CacheActorConfig{NewCache: srv.newCache, Backend: "redis"}), "cache")
	require.NoError(t, err)
	_, err = actors.Request[*connectorv1.StateResponse](ctx, sys.Root, cachePID, &connectorv1.StateRequest{})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `message "baton.connector.v1.StateRequest": not served by cache`)
	assert.NotContains(t, err.Error(), "*")
	require.NoError(t, stopPID(sys, cachePID))

	stopped := actors.NewSystem(nil)
	stopped.Shutdown()
	_, err = actors.Request[*cachev1.GetResponse](ctx, stopped.Root, echo, get)
	check(err, `cache "sessions": get "k": node stopped: baton: closed`, backends.ErrClosed)
	assert.Equal(t, 1, strings.Count(err.Error(), "baton: "))
}

// TestRequestAsyncFailures: the continuation gets the same typed errors as
// Request would return, on the actor's goroutine.
func TestRequestAsyncFailures(t *testing.T) {
	sys := newSystem(t)
	silent, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), "silent")
	require.NoError(t, err)
	get := &cachev1.GetRequest{Name: "sessions", Key: "k"}
	errs := make(chan error, 3)
	asker, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); !ok {
			return
		}
		report := func(_ *cachev1.GetResponse, err error) { errs <- err }
		actors.RequestAsync(c, nil, get, time.Second, report)
		actors.RequestAsync(c, actor.NewPID(sys.Address(), "nobody"), get, time.Second, report)
		actors.RequestAsync(c, silent, get, 50*time.Millisecond, report)
	}), "asker")
	require.NoError(t, err)
	got := map[error]string{}
	for range 3 {
		select {
		case err := <-errs:
			switch {
			case errors.Is(err, backends.ErrUnavailable):
				got[backends.ErrUnavailable] += err.Error() + "; "
			case errors.Is(err, context.DeadlineExceeded):
				got[context.DeadlineExceeded] = err.Error()
			default:
				t.Errorf("unexpected error %v", err)
			}
			assert.True(t, strings.HasPrefix(err.Error(), `cache "sessions": get "k": `), "%q", err)
		case <-time.After(5 * time.Second):
			t.Fatal("a continuation never ran")
		}
	}
	assert.Len(t, got, 2, "%v", got)
	require.NoError(t, stopPID(sys, asker))
	require.NoError(t, stopPID(sys, silent))
}
