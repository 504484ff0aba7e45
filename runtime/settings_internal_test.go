package runtime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReloadableUpdate: a setting parses its text into its own field, goes
// back to the Spec default when it is found in no layer, reports a change
// only when the value moved, and leaves the value alone on bad input.
func TestReloadableUpdate(t *testing.T) {
	defaults := Settings{CacheDefaultTTL: time.Minute, CacheMaxBatch: 64, LockTTL: 15 * time.Second, RegistrationTTL: 10 * time.Second}
	byName := map[string]reloadable{}
	for _, r := range reloadables {
		c, n := r.names()
		byName[c+"."+n] = r
	}
	require.Len(t, byName, 4)

	next := defaults
	changed, value, err := byName["cache.max_batch"].update(&next, defaults, "128", true)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, "128", value)
	assert.Equal(t, 128, next.CacheMaxBatch)

	changed, _, err = byName["cache.max_batch"].update(&next, defaults, "128", true)
	require.NoError(t, err)
	assert.False(t, changed, "the same value again is no change")

	for _, tc := range []struct{ setting, raw string }{
		{"cache.max_batch", "0"}, {"cache.max_batch", "many"},
		{"cache.default_ttl", "1us"}, {"cache.default_ttl", "-1s"},
		{"lock.ttl", "10ms"}, {"discovery.registration_ttl", "soon"},
	} {
		before := next
		changed, value, err := byName[tc.setting].update(&next, defaults, tc.raw, true)
		require.Error(t, err, "%s=%q", tc.setting, tc.raw)
		assert.False(t, changed)
		assert.Equal(t, tc.raw, value)
		assert.Equal(t, before, next, "a rejected value changes nothing")
	}

	changed, value, err = byName["cache.max_batch"].update(&next, defaults, "", false)
	require.NoError(t, err)
	assert.True(t, changed, "deleted from every layer: back to the Spec value")
	assert.Equal(t, "64", value)
	assert.Equal(t, defaults, next)

	changed, _, err = byName["cache.default_ttl"].update(&next, defaults, "0", true)
	require.NoError(t, err)
	assert.True(t, changed, "0 is no expiry")
	assert.Zero(t, next.CacheDefaultTTL)
}
