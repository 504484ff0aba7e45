package components

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestIncarnationStale: a continuation is acted on only by the incarnation
// that sent it; after end or renew every earlier one is stale, and messages
// that are not continuations never are.
func TestIncarnationStale(t *testing.T) {
	var inc incarnation
	inc.renew()
	first := inc.stamp()
	inc.end()
	inc.renew()
	current := inc.stamp()

	for _, tc := range []struct {
		name  string
		msg   any
		stale bool
	}{
		{"current incarnation", &lockAcquired{stamp: current}, false},
		{"earlier incarnation", &lockAcquired{stamp: first}, true},
		{"never stamped", &lockYieldEnded{}, true},
		{"grain continuation, earlier", &holderDead{stamp: first}, true},
		{"grain continuation, current", &holderDead{stamp: current}, false},
		{"not a continuation", &LockSettings{}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.stale, inc.stale(tc.msg))
		})
	}

	inc.end()
	assert.True(t, inc.stale(&lockAcquired{stamp: current}), "stale once the incarnation ended")
}
