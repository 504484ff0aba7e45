package cluster

import (
	"testing"

	"github.com/stretchr/testify/assert"

	lockv1 "github.com/baton-go/baton/messages/lock/v1"
)

// TestNoReply: a typed nil response inside an interface (what
// actors.Request returns without a reply) counts as no reply, so a dead
// letter is recognised as a grain that is gone.
func TestNoReply(t *testing.T) {
	var typed *lockv1.ReleaseResponse
	assert.True(t, noReply(nil))
	assert.True(t, noReply(typed))
	assert.False(t, noReply(&lockv1.ReleaseResponse{}))
}
