package backends

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLayerPrefixesDoNotOverlap(t *testing.T) {
	assert.Equal(t, "system/", LayerKey(LayerSystem, "c", "i", ""))
	assert.Equal(t, "component/c/", LayerKey(LayerComponent, "c", "i", ""))
	assert.Equal(t, "instance/c/i/", LayerKey(LayerInstance, "c", "i", ""))
	// Names cannot contain '/', so "c" never covers "cx".
	assert.False(t, strings.HasPrefix(LayerKey(LayerComponent, "cx", "", "k"), LayerKey(LayerComponent, "c", "", "")))
	assert.False(t, strings.HasPrefix(LayerKey(LayerInstance, "c", "ix", "k"), LayerKey(LayerInstance, "c", "i", "")))
}
