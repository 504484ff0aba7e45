package bind

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decode applies the decoding rule documented on New to the keys in
// values (full keys, all owned by base).
func decode[T any](base string, values map[string]string, strict bool) (T, error) {
	var out T
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	// Sorted, the document key comes first and a parent path before its
	// children, so the more specific key always wins.
	slices.Sort(keys)
	for _, k := range keys {
		if k == base {
			doc, err := parseDocument(values[k])
			if err != nil {
				return out, fmt.Errorf("key %q: %w", k, err)
			}
			if doc != nil {
				root = doc
			}
			continue
		}
		rel, ok := strings.CutPrefix(k, base+"/")
		if !ok {
			continue
		}
		path := splitPath(rel)
		if len(path) == 0 {
			continue
		}
		setPath(root, path, parseValue(values[k]))
	}
	if !strict {
		if err := root.Decode(&out); err != nil {
			return out, err
		}
		return out, nil
	}
	raw, err := yaml.Marshal(root)
	if err != nil {
		return out, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil {
		return out, err
	}
	return out, nil
}

// parseDocument parses the value of the document key: empty means "no
// document", anything else must be a YAML mapping.
func parseDocument(s string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("document must be a mapping, got %s", n.ShortTag())
	}
	return n, nil
}

// parseValue parses one field value as YAML; text that is not valid YAML
// becomes a plain string, so "@host" or "a: b: c" still bind to a string
// field.
func parseValue(s string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err == nil && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	if strings.TrimSpace(s) == "" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func splitPath(rel string) []string {
	parts := strings.Split(rel, "/")
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// setPath sets path in the mapping root to leaf, creating (or replacing
// non-mapping values with) intermediate mappings.
func setPath(root *yaml.Node, path []string, leaf *yaml.Node) {
	node := root
	for i, seg := range path {
		idx := -1
		for j := 0; j+1 < len(node.Content); j += 2 {
			if node.Content[j].Value == seg {
				idx = j + 1
			}
		}
		if i == len(path)-1 {
			if idx >= 0 {
				node.Content[idx] = leaf
			} else {
				node.Content = append(node.Content, strNode(seg), leaf)
			}
			return
		}
		if idx >= 0 && node.Content[idx].Kind == yaml.MappingNode {
			node = node.Content[idx]
			continue
		}
		child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if idx >= 0 {
			node.Content[idx] = child
		} else {
			node.Content = append(node.Content, strNode(seg), child)
		}
		node = child
	}
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
