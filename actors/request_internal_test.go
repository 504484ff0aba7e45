package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/baton-go/baton/backends"
)

// TestWithCallerContext: a failure that arrives after the caller's context
// ended also matches that context's error; one that arrives while it has
// time left is kept as sent, never turned into a deadline.
func TestWithCallerContext(t *testing.T) {
	unavailable := backends.Unavailable("etcd: get", errors.New("request timed out"))
	live := t.Context()
	expired, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	<-expired.Done()

	err := withCallerContext(live, unavailable)
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "time left: not the caller's deadline")

	err = withCallerContext(expired, unavailable)
	assert.ErrorIs(t, err, backends.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the caller's deadline passed")

	notFound := fmt.Errorf("get: %w", backends.ErrNotFound)
	assert.Equal(t, notFound, withCallerContext(expired, notFound), "an answer is not a timeout")
	assert.NoError(t, withCallerContext(expired, nil))
	already := fmt.Errorf("acquire: %w", context.DeadlineExceeded)
	assert.Equal(t, already, withCallerContext(expired, already))
}
