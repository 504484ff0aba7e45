package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ResolvedItem is a configuration value together with the layer
// (LayerSystem, LayerComponent or LayerInstance) it was taken from.
type ResolvedItem struct {
	ConfigItem
	Layer string
}

// Layered resolves settings for one component instance over the three
// configuration layers stored in a ConfigCenter (see LayerKey):
//
//	instance/<component>/<instance>/<key>   most specific, wins
//	component/<component>/<key>
//	system/<key>                            least specific
//
// It works with any ConfigCenter implementation because it only uses the
// interface. Environment isolation comes from the ConfigCenter itself: its
// namespace (root/env) scopes all three layers.
type Layered struct {
	cc        ConfigCenter
	component string
	instance  string
}

// NewLayered validates component and instance and returns a resolver bound
// to them. instance may be empty: the instance layer is then skipped.
func NewLayered(cc ConfigCenter, component, instance string) (*Layered, error) {
	if cc == nil {
		return nil, Invalid("config center", "<nil>", "must not be nil")
	}
	if err := validateLayerNames(component, instance); err != nil {
		return nil, err
	}
	return &Layered{cc: cc, component: component, instance: instance}, nil
}

// Component returns the component name the resolver is bound to.
func (l *Layered) Component() string { return l.component }

// Instance returns the instance name the resolver is bound to ("" = none).
func (l *Layered) Instance() string { return l.instance }

// Resolve returns the most specific value of key; see the package function
// Resolve.
func (l *Layered) Resolve(ctx context.Context, key string) (ResolvedItem, error) {
	if err := ValidateKey(key); err != nil {
		return ResolvedItem{}, err
	}
	return resolve(ctx, l.cc, l.component, l.instance, key)
}

// ResolveAll returns every key visible to the component instance, each with
// its most specific value; see the package function ResolveAll.
func (l *Layered) ResolveAll(ctx context.Context) (map[string]ResolvedItem, error) {
	return resolveAll(ctx, l.cc, l.component, l.instance)
}

// Resolve returns the most specific value of key for a component instance:
// the instance layer if set there, else the component layer, else the
// system layer. The second result names the layer the value came from.
// ErrNotFound (wrapped) when no layer holds the key. instance may be empty
// to resolve for the component as a whole.
//
// The three layers are read one after the other, not in one transaction: a
// concurrent write may be seen in one layer and not yet in another, which is
// harmless because each read returns a value that really existed.
func Resolve(ctx context.Context, cc ConfigCenter, component, instance, key string) (ConfigItem, string, error) {
	if cc == nil {
		return ConfigItem{}, "", Invalid("config center", "<nil>", "must not be nil")
	}
	if err := validateLayerNames(component, instance); err != nil {
		return ConfigItem{}, "", err
	}
	if err := ValidateKey(key); err != nil {
		return ConfigItem{}, "", err
	}
	it, err := resolve(ctx, cc, component, instance, key)
	return it.ConfigItem, it.Layer, err
}

// ResolveAll merges the three layers into one map keyed by the setting name
// (the part after the layer prefix, e.g. "timeout" or "db/host"); each entry
// holds the most specific value and its layer. Missing layers are simply
// empty: the result is an empty map, not an error, when nothing is set.
func ResolveAll(ctx context.Context, cc ConfigCenter, component, instance string) (map[string]ResolvedItem, error) {
	if cc == nil {
		return nil, Invalid("config center", "<nil>", "must not be nil")
	}
	if err := validateLayerNames(component, instance); err != nil {
		return nil, err
	}
	return resolveAll(ctx, cc, component, instance)
}

// layersMostSpecificFirst lists the layers a lookup for (component,
// instance) consults, most specific first.
func layersMostSpecificFirst(instance string) []string {
	if instance == "" {
		return []string{LayerComponent, LayerSystem}
	}
	return []string{LayerInstance, LayerComponent, LayerSystem}
}

func resolve(ctx context.Context, cc ConfigCenter, component, instance, key string) (ResolvedItem, error) {
	for _, layer := range layersMostSpecificFirst(instance) {
		full := LayerKey(layer, component, instance, key)
		if err := ValidateKey(full); err != nil {
			return ResolvedItem{}, err
		}
		it, err := cc.GetItem(ctx, full)
		if err == nil {
			return ResolvedItem{ConfigItem: it, Layer: layer}, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return ResolvedItem{}, fmt.Errorf("config: resolve %q (%s layer): %w", key, layer, err)
		}
	}
	return ResolvedItem{}, fmt.Errorf("config: resolve %q for %s/%s: %w", key, component, instance, ErrNotFound)
}

func resolveAll(ctx context.Context, cc ConfigCenter, component, instance string) (map[string]ResolvedItem, error) {
	out := make(map[string]ResolvedItem)
	layers := layersMostSpecificFirst(instance)
	// Least specific first, so more specific layers overwrite.
	for i := len(layers) - 1; i >= 0; i-- {
		layer := layers[i]
		// LayerKey with an empty key yields exactly the layer's prefix.
		prefix := LayerKey(layer, component, instance, "")
		items, err := cc.ListItems(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("config: resolve all (%s layer): %w", layer, err)
		}
		for _, it := range items {
			name, ok := strings.CutPrefix(it.Key, prefix)
			if !ok || name == "" {
				continue
			}
			out[name] = ResolvedItem{ConfigItem: it, Layer: layer}
		}
	}
	return out, nil
}

func validateLayerNames(component, instance string) error {
	if err := ValidateName("component", component); err != nil {
		return err
	}
	if instance != "" {
		if err := ValidateName("instance", instance); err != nil {
			return err
		}
	}
	return nil
}
