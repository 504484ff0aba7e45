package layered

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
)

func TestLayersMostSpecificFirst(t *testing.T) {
	assert.Equal(t, []string{backends.LayerInstance, backends.LayerComponent, backends.LayerSystem}, layersMostSpecificFirst("i"))
	assert.Equal(t, []string{backends.LayerComponent, backends.LayerSystem}, layersMostSpecificFirst(""), "no instance, no instance layer")
}

func TestResolveRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	_, _, err := Resolve(ctx, nil, "c", "i", "k")
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "nil config center")
	_, err = ResolveAll(ctx, nil, "c", "i")
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "nil config center")
	_, err = New(nil, "c", "i")
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "nil config center")

	var cc backends.ConfigCenter = unusedCenter{} // never called: arguments fail first
	bad := []struct{ what, component, instance, key string }{
		{"empty component", "", "i", "k"},
		{"component with slash", "a/b", "i", "k"},
		{"instance with slash", "c", "a/b", "k"},
		{"instance with nul", "c", "a\x00", "k"},
		{"empty key", "c", "i", ""},
		{"key with nul", "c", "i", "k\x00"},
		{"key too long", "c", "i", strings.Repeat("k", backends.MaxKeyLen+1)},
	}
	for _, b := range bad {
		_, _, err := Resolve(ctx, cc, b.component, b.instance, b.key)
		assert.ErrorIs(t, err, backends.ErrInvalidArgument, b.what)
	}
	_, err = New(cc, "c", "a/b")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	l, err := New(cc, "c", "")
	require.NoError(t, err)
	assert.Equal(t, "c", l.Component())
	assert.Empty(t, l.Instance())
	_, err = l.Resolve(ctx, "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

func TestResolveKeyTooLongAfterLayering(t *testing.T) {
	// A key valid on its own can exceed the limit once the layer prefix is
	// added; that is an invalid argument, not a backend error.
	var cc backends.ConfigCenter = unusedCenter{}
	key := strings.Repeat("k", backends.MaxKeyLen-2)
	_, _, err := Resolve(context.Background(), cc, "c", "i", key)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
}

// unusedCenter is a config center whose methods must never be called
// (each would panic on the nil interface it embeds).
type unusedCenter struct{ backends.ConfigCenter }
