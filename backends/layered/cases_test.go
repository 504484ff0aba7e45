package layered_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/layered"
)

// TestLayered runs the case the config conformance suite ran for every
// implementation until layered resolution became a package of its own. It
// reads only through the ConfigCenter interface, so it runs once, against
// one real Redis; the subtest name is the former case name.
func TestLayered(t *testing.T) {
	t.Run("layered-resolution", func(t *testing.T) { layeredResolution(t, freshConfig(t)) })
}

func layeredResolution(t *testing.T, cc backends.ConfigCenter) {
	ctx := ctxFor(t, opTimeout)
	const comp, inst = "gateway", "gw-1"
	sys := backends.LayerKey(backends.LayerSystem, comp, inst, "timeout")
	cmp := backends.LayerKey(backends.LayerComponent, comp, inst, "timeout")
	ins := backends.LayerKey(backends.LayerInstance, comp, inst, "timeout")

	_, _, err := layered.Resolve(ctx, cc, comp, inst, "timeout")
	require.ErrorIs(t, err, backends.ErrNotFound, "no layer holds the key")

	resolve := func(component, instance string) (string, string) {
		t.Helper()
		it, layer, err := layered.Resolve(ctx, cc, component, instance, "timeout")
		require.NoError(t, err, "resolve for %s/%s", component, instance)
		return it.Value, layer
	}
	setKey(t, cc, sys, "1s")
	v, layer := resolve(comp, inst)
	assert.Equal(t, [2]string{"1s", backends.LayerSystem}, [2]string{v, layer})

	setKey(t, cc, cmp, "2s")
	v, layer = resolve(comp, inst)
	assert.Equal(t, [2]string{"2s", backends.LayerComponent}, [2]string{v, layer})

	setKey(t, cc, ins, "3s")
	v, layer = resolve(comp, inst)
	assert.Equal(t, [2]string{"3s", backends.LayerInstance}, [2]string{v, layer})

	v, layer = resolve(comp, "gw-2")
	assert.Equal(t, [2]string{"2s", backends.LayerComponent}, [2]string{v, layer}, "another instance of the component")
	v, layer = resolve("other", inst)
	assert.Equal(t, [2]string{"1s", backends.LayerSystem}, [2]string{v, layer}, "another component")
	v, layer = resolve(comp, "")
	assert.Equal(t, [2]string{"2s", backends.LayerComponent}, [2]string{v, layer}, "no instance")

	l, err := layered.New(cc, comp, inst)
	require.NoError(t, err)
	r, err := l.Resolve(ctx, "timeout")
	require.NoError(t, err)
	assert.Equal(t, backends.LayerInstance, r.Layer)
	assert.Equal(t, getItem(t, cc, ins), r.ConfigItem, "the resolved item carries its version")

	delKey(t, cc, ins)
	v, layer = resolve(comp, inst)
	assert.Equal(t, [2]string{"2s", backends.LayerComponent}, [2]string{v, layer}, "after the instance value is deleted")

	// ResolveAll merges the layers.
	setKey(t, cc, backends.LayerKey(backends.LayerSystem, comp, inst, "retries"), "5")
	setKey(t, cc, backends.LayerKey(backends.LayerComponent, comp, inst, "db/host"), "comp-db")
	setKey(t, cc, backends.LayerKey(backends.LayerInstance, comp, inst, "db/host"), "inst-db")
	setKey(t, cc, backends.LayerKey(backends.LayerInstance, comp, "gw-2", "db/host"), "other-inst")
	setKey(t, cc, backends.LayerKey(backends.LayerComponent, "gatewayx", inst, "db/host"), "other-comp")
	all, err := l.ResolveAll(ctx)
	require.NoError(t, err)
	got := make(map[string][2]string, len(all))
	for k, it := range all {
		got[k] = [2]string{it.Value, it.Layer}
	}
	assert.Equal(t, map[string][2]string{
		"timeout": {"2s", backends.LayerComponent},
		"retries": {"5", backends.LayerSystem},
		"db/host": {"inst-db", backends.LayerInstance},
	}, got)

	_, _, err = layered.Resolve(ctx, cc, "a/b", inst, "timeout")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "component with '/'")
	_, _, err = layered.Resolve(ctx, cc, comp, "", "")
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "empty key")
	_, err = layered.New(cc, "", inst)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "empty component")
}
