// Package bind keeps a Go value in step with the configuration stored under
// one prefix of a backends.ConfigCenter: New reads the prefix, decodes it
// into a T, and then watches the prefix and installs every later change
// that decodes and passes validation.
//
//	type Settings struct {
//		Host    string        `yaml:"host"`
//		Timeout time.Duration `yaml:"timeout"`
//	}
//	v, err := bind.New[Settings](ctx, cc, "svc/", bind.Options[Settings]{})
//	if err != nil { … }
//	defer v.Close()
//	s := v.Current() // never blocks; always the last good value
//
// It is a package of its own, apart from backends/layered, because it
// binds one prefix and knows nothing of layers: a binding of a layer is a
// binding of that layer's prefix (backends.LayerKey with an empty key).
//
// # Decoding rule
//
// Let base be the prefix without a trailing '/':
//
//   - the key base itself, if present, holds a whole YAML (or JSON) document
//     that must be a mapping: it is the starting value;
//   - every key base/<a>/<b>/… sets the field at path a.b.… to its value,
//     parsed as YAML (JSON is YAML too), overriding the document. A value
//     that is not valid YAML is taken as a plain string.
//
// Field names follow the yaml struct tags of T (go.yaml.in/yaml/v3 rules:
// without a tag, the lower-cased field name); durations accept "5s". Keys
// that only share the spelling of base ("base2", "based/x") are not part of
// the binding.
package bind
