// Package layered resolves a setting over the three configuration layers
// that Baton keeps in one backends.ConfigCenter: a value set for one
// instance of a component wins over one set for the component, which wins
// over the system-wide one. backends.LayerKey says where each layer's keys
// live.
//
// It reads through the ConfigCenter interface only, so it works with every
// implementation; the environment (root and env) of the ConfigCenter scopes
// all three layers.
//
//	it, layer, err := layered.Resolve(ctx, cc, "gateway", "gw-1", "timeout")
//	// layer is backends.LayerInstance, LayerComponent or LayerSystem;
//	// errors.Is(err, backends.ErrNotFound) when no layer holds the key.
//
// Binding a prefix to a Go value lives in backends/bind: it reads one
// prefix, not layers, so the two share nothing but the ConfigCenter.
package layered
