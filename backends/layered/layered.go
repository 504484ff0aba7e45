package layered

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/baton-go/baton/backends"
)

// Item is a configuration value together with the layer
// (backends.LayerSystem, LayerComponent or LayerInstance) it was taken from.
type Item struct {
	backends.ConfigItem
	Layer string
}

// Resolver resolves settings for one component instance.
type Resolver struct {
	cc        backends.ConfigCenter
	component string
	instance  string
}

// New validates component and instance and returns a resolver bound to
// them. instance may be empty: the instance layer is then skipped.
func New(cc backends.ConfigCenter, component, instance string) (*Resolver, error) {
	if cc == nil {
		return nil, backends.Invalid("config center", "<nil>", "must not be nil")
	}
	if err := validateLayerNames(component, instance); err != nil {
		return nil, err
	}
	return &Resolver{cc: cc, component: component, instance: instance}, nil
}

// Component returns the component name the resolver is bound to.
func (r *Resolver) Component() string { return r.component }

// Instance returns the instance name the resolver is bound to ("" = none).
func (r *Resolver) Instance() string { return r.instance }

// Resolve returns the most specific value of key; see the package function
// Resolve.
func (r *Resolver) Resolve(ctx context.Context, key string) (Item, error) {
	if err := backends.ValidateKey(key); err != nil {
		return Item{}, err
	}
	return resolve(ctx, r.cc, r.component, r.instance, key)
}

// ResolveAll returns every key visible to the component instance, each with
// its most specific value; see the package function ResolveAll.
func (r *Resolver) ResolveAll(ctx context.Context) (map[string]Item, error) {
	return resolveAll(ctx, r.cc, r.component, r.instance)
}

// Resolve returns the most specific value of key for a component instance:
// the instance layer if set there, else the component layer, else the
// system layer. The second result names the layer the value came from.
// backends.ErrNotFound (wrapped) when no layer holds the key. instance may
// be empty to resolve for the component as a whole.
//
// The layers are read one after the other, not in one transaction: a
// concurrent write may be seen in one layer and not yet in another, which is
// harmless because each read returns a value that really existed.
func Resolve(ctx context.Context, cc backends.ConfigCenter, component, instance, key string) (backends.ConfigItem, string, error) {
	if cc == nil {
		return backends.ConfigItem{}, "", backends.Invalid("config center", "<nil>", "must not be nil")
	}
	if err := validateLayerNames(component, instance); err != nil {
		return backends.ConfigItem{}, "", err
	}
	if err := backends.ValidateKey(key); err != nil {
		return backends.ConfigItem{}, "", err
	}
	it, err := resolve(ctx, cc, component, instance, key)
	return it.ConfigItem, it.Layer, err
}

// ResolveAll merges the layers into one map keyed by the setting name (the
// part after the layer prefix, e.g. "timeout" or "db/host"); each entry
// holds the most specific value and its layer. A layer with nothing set is
// simply empty: the result is an empty map, not an error, when nothing is
// set at all.
func ResolveAll(ctx context.Context, cc backends.ConfigCenter, component, instance string) (map[string]Item, error) {
	if cc == nil {
		return nil, backends.Invalid("config center", "<nil>", "must not be nil")
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
		return []string{backends.LayerComponent, backends.LayerSystem}
	}
	return []string{backends.LayerInstance, backends.LayerComponent, backends.LayerSystem}
}

func resolve(ctx context.Context, cc backends.ConfigCenter, component, instance, key string) (Item, error) {
	for _, layer := range layersMostSpecificFirst(instance) {
		full := backends.LayerKey(layer, component, instance, key)
		if err := backends.ValidateKey(full); err != nil {
			return Item{}, err
		}
		it, err := cc.GetItem(ctx, full)
		if err == nil {
			return Item{ConfigItem: it, Layer: layer}, nil
		}
		if !errors.Is(err, backends.ErrNotFound) {
			return Item{}, fmt.Errorf("config: resolve %q (%s layer): %w", key, layer, err)
		}
	}
	return Item{}, fmt.Errorf("config: resolve %q for %s/%s: %w", key, component, instance, backends.ErrNotFound)
}

func resolveAll(ctx context.Context, cc backends.ConfigCenter, component, instance string) (map[string]Item, error) {
	out := make(map[string]Item)
	layers := layersMostSpecificFirst(instance)
	// Least specific first, so more specific layers overwrite.
	for i := len(layers) - 1; i >= 0; i-- {
		layer := layers[i]
		// LayerKey with an empty key yields exactly the layer's prefix.
		prefix := backends.LayerKey(layer, component, instance, "")
		items, err := cc.ListItems(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("config: resolve all (%s layer): %w", layer, err)
		}
		for _, it := range items {
			name, ok := strings.CutPrefix(it.Key, prefix)
			if !ok || name == "" {
				continue
			}
			out[name] = Item{ConfigItem: it, Layer: layer}
		}
	}
	return out, nil
}

func validateLayerNames(component, instance string) error {
	if err := backends.ValidateName("component", component); err != nil {
		return err
	}
	if instance != "" {
		if err := backends.ValidateName("instance", instance); err != nil {
			return err
		}
	}
	return nil
}
