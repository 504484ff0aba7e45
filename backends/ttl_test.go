package backends_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

// TestTTLMinimums: TTLs too short to mean anything are refused with the
// field and the minimum named; 0 keeps its meaning (no expiry for a cache
// entry, the default for a lock).
func TestTTLMinimums(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"cache 0 (no expiry)", backends.ValidateCacheTTL("ttl", 0), true},
		{"cache 1ms", backends.ValidateCacheTTL("ttl", time.Millisecond), true},
		{"cache 1ns", backends.ValidateCacheTTL("ttl", time.Nanosecond), false},
		{"cache 999µs", backends.ValidateCacheTTL("ttl", backends.MinCacheTTL-time.Microsecond), false},
		{"cache negative", backends.ValidateCacheTTL("ttl", -time.Second), false},
		{"lock 0 (default)", backends.ValidateLockTTL("ttl", 0), true},
		{"lock 100ms", backends.ValidateLockTTL("ttl", 100*time.Millisecond), true},
		{"lock 1ms", backends.ValidateLockTTL("ttl", time.Millisecond), false},
		{"lock negative", backends.ValidateLockTTL("ttl", -time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ok {
				require.NoError(t, tc.err)
				return
			}
			var ia *backends.InvalidArgumentError
			require.ErrorAs(t, tc.err, &ia)
			assert.ErrorIs(t, tc.err, backends.ErrInvalidArgument)
			assert.Equal(t, "ttl", ia.Field)
		})
	}
	_, err := backends.LockOptions{TTL: time.Millisecond}.Validate()
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "below the minimum lock TTL of 100ms")
	o, err := backends.LockOptions{}.Validate()
	require.NoError(t, err)
	assert.Equal(t, backends.DefaultLockTTL, o.TTL)
}
