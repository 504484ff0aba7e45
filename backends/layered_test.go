package backends

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLayerPrefixesDoNotOverlap(t *testing.T) {
	assert.Equal(t, "system/", LayerKey(LayerSystem, "c", "i", ""))
	assert.Equal(t, "component/c/", LayerKey(LayerComponent, "c", "i", ""))
	assert.Equal(t, "instance/c/i/", LayerKey(LayerInstance, "c", "i", ""))
	// Names cannot contain '/', so "c" never covers "cx".
	assert.False(t, strings.HasPrefix(LayerKey(LayerComponent, "cx", "", "k"), LayerKey(LayerComponent, "c", "", "")))
	assert.False(t, strings.HasPrefix(LayerKey(LayerInstance, "c", "ix", "k"), LayerKey(LayerInstance, "c", "i", "")))
}

func TestLayersMostSpecificFirst(t *testing.T) {
	assert.Equal(t, []string{LayerInstance, LayerComponent, LayerSystem}, layersMostSpecificFirst("i"))
	assert.Equal(t, []string{LayerComponent, LayerSystem}, layersMostSpecificFirst(""), "no instance, no instance layer")
}

func TestResolveRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	_, _, err := Resolve(ctx, nil, "c", "i", "k")
	require.ErrorIs(t, err, ErrInvalidArgument, "nil config center")
	_, err = ResolveAll(ctx, nil, "c", "i")
	require.ErrorIs(t, err, ErrInvalidArgument, "nil config center")
	_, err = NewLayered(nil, "c", "i")
	require.ErrorIs(t, err, ErrInvalidArgument, "nil config center")

	var cc ConfigCenter = (*SnapshotFallback)(nil) // never called: arguments fail first
	bad := []struct{ what, component, instance, key string }{
		{"empty component", "", "i", "k"},
		{"component with slash", "a/b", "i", "k"},
		{"instance with slash", "c", "a/b", "k"},
		{"instance with nul", "c", "a\x00", "k"},
		{"empty key", "c", "i", ""},
		{"key with nul", "c", "i", "k\x00"},
		{"key too long", "c", "i", strings.Repeat("k", MaxKeyLen+1)},
	}
	for _, b := range bad {
		_, _, err := Resolve(ctx, cc, b.component, b.instance, b.key)
		assert.ErrorIs(t, err, ErrInvalidArgument, b.what)
	}
	_, err = NewLayered(cc, "c", "a/b")
	assert.ErrorIs(t, err, ErrInvalidArgument)
	l, err := NewLayered(cc, "c", "")
	require.NoError(t, err)
	assert.Equal(t, "c", l.Component())
	assert.Empty(t, l.Instance())
	_, err = l.Resolve(ctx, "")
	assert.ErrorIs(t, err, ErrInvalidArgument)
}

func TestResolveKeyTooLongAfterLayering(t *testing.T) {
	// A key valid on its own can exceed the limit once the layer prefix is
	// added; that is an invalid argument, not a backend error.
	var cc ConfigCenter = (*SnapshotFallback)(nil)
	key := strings.Repeat("k", MaxKeyLen-2)
	_, _, err := Resolve(context.Background(), cc, "c", "i", key)
	assert.ErrorIs(t, err, ErrInvalidArgument)
}
