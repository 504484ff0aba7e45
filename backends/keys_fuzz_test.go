package backends_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
)

// components are the third key segments a namespace hands out.
var components = []string{
	backends.ComponentCache, backends.ComponentLock, backends.ComponentElection,
	backends.ComponentDiscovery, backends.ComponentConfig,
}

// FuzzKeyLayout feeds arbitrary roots, environments, names and keys to the
// validators and the key builders. It checks that a rejection is always an
// *InvalidArgumentError that matches ErrInvalidArgument, that the validators
// agree with each other (a valid name is a valid key, a valid key a valid
// prefix), and that whatever is accepted stays inside its own namespace:
// the prefix of a valid name splits back into exactly root, env, component
// and name, a key built under it keeps that prefix and gives the key back,
// and no other name, component or environment owns it. The layer keys of
// the config center are held to the same rule.
func FuzzKeyLayout(f *testing.F) {
	seeds := []struct {
		root, env, name, other, key string
		ttl                         int64
	}{
		{"", "dev", "sessions", "sessions2", "user/42", 0},
		{"baton", "prod", "a", "ab", "b", int64(time.Second)},
		{"t", "test-1", "a:b", "a", "x\x00", int64(time.Microsecond)},
		{"x/y", "dev", "n", "n", "k", -1},
		{"baton", "Dev", "n", "m", "k", int64(backends.MinLockTTL) - 1},
		{"baton", "dev", "a/b", "a", "b/k", int64(backends.MinCacheTTL)},
		{"baton", "dev", "\xff", "\uFFFD", "k", 1},
		{"baton", "dev", "{t}", "t", "*", 0},
		{"baton", "dev_2", strings.Repeat("n", backends.MaxNameLen+1), "n", strings.Repeat("k", backends.MaxKeyLen+1), 0},
		{"baton", "dev", "tab\tname", "redis", "", 0},
		{"baton", "0", "etcd", "dev", "/", 0},
	}
	for _, s := range seeds {
		f.Add(s.root, s.env, s.name, s.other, s.key, s.ttl)
	}
	f.Fuzz(func(t *testing.T, root, env, name, other, key string, ttl int64) {
		ns := backends.Namespace{Root: root, Env: env}
		nsErr := ns.Validate()
		nameErr := backends.ValidateName("name", name)
		otherErr := backends.ValidateName("other", other)
		keyErr := backends.ValidateKey(key)
		prefixErr := backends.ValidatePrefix(key)
		for _, err := range []error{
			nsErr, nameErr, otherErr, keyErr, prefixErr,
			backends.ValidateName("key as a name", key),
			backends.ValidateBackend("backend", name),
			backends.ValidateValue([]byte(key), len(name)-1),
			backends.ValidateTTL("ttl", time.Duration(ttl)),
			backends.ValidateCacheTTL("ttl", time.Duration(ttl)),
			backends.ValidateLockTTL("ttl", time.Duration(ttl)),
			backends.ServiceInfo{ID: name, Name: other, Address: key, Weight: int(ttl)}.Validate(),
		} {
			checkRejection(t, err)
		}

		// The validators agree with each other and with their docs.
		if nameErr == nil {
			if name == "" || len(name) > backends.MaxNameLen || strings.ContainsAny(name, "/\x00\r\n\t") {
				t.Fatalf("ValidateName accepted %q", name)
			}
			if err := backends.ValidateKey(name); err != nil {
				t.Fatalf("name %q is valid but not as a key: %v", name, err)
			}
		}
		if keyErr == nil && prefixErr != nil {
			t.Fatalf("key %q is valid but not as a prefix: %v", key, prefixErr)
		}
		if prefixErr == nil && key != "" && keyErr != nil {
			t.Fatalf("non-empty prefix %q is valid but not as a key: %v", key, keyErr)
		}
		if accepted := backends.ValidateBackend("backend", name) == nil; accepted != (name == backends.BackendRedis || name == backends.BackendEtcd) {
			t.Fatalf("ValidateBackend(%q) accepted = %v", name, accepted)
		}
		d := time.Duration(ttl)
		if accepted := backends.ValidateCacheTTL("ttl", d) == nil; accepted != (d == 0 || d >= backends.MinCacheTTL) {
			t.Fatalf("ValidateCacheTTL(%v) accepted = %v", d, accepted)
		}
		if accepted := backends.ValidateLockTTL("ttl", d) == nil; accepted != (d == 0 || d >= backends.MinLockTTL) {
			t.Fatalf("ValidateLockTTL(%v) accepted = %v", d, accepted)
		}

		if nsErr == nil && nameErr == nil {
			checkNamespace(t, ns, name, other, otherErr == nil, key, keyErr == nil)
		}
		if nameErr == nil && otherErr == nil && keyErr == nil {
			checkLayerKeys(t, name, other, key)
		}
	})
}

// checkRejection fails unless err is nil or a well-formed invalid argument.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, backends.ErrInvalidArgument) {
		t.Fatalf("rejection %q (%T) does not match ErrInvalidArgument", err, err)
	}
	var ia *backends.InvalidArgumentError
	if !errors.As(err, &ia) || ia.Field == "" || ia.Reason == "" {
		t.Fatalf("rejection %q does not name its field and reason: %#v", err, ia)
	}
	if !strings.HasPrefix(err.Error(), "baton: invalid argument: ") {
		t.Fatalf("rejection text %q", err.Error())
	}
}

// checkNamespace checks the keys of name (valid) in ns (valid).
func checkNamespace(t *testing.T, ns backends.Namespace, name, other string, otherValid bool, key string, keyValid bool) {
	t.Helper()
	def := ns.WithDefaults()
	for _, c := range components {
		p := ns.Prefix(c, name)
		if got, want := strings.Split(p, "/"), []string{def.Root, def.Env, c, name, ""}; !slices.Equal(got, want) {
			t.Fatalf("Prefix(%q, %q) = %q: segments %q, want %q", c, name, p, got, want)
		}
		if !keyValid {
			continue
		}
		k := ns.Key(c, name, key)
		rest, ok := strings.CutPrefix(k, p)
		if !ok || rest != key {
			t.Fatalf("Key(%q, %q, %q) = %q is not prefix %q + the key", c, name, key, k, p)
		}
		for _, c2 := range components {
			if c2 != c && strings.HasPrefix(k, ns.Prefix(c2, name)) {
				t.Fatalf("key %q of component %s lies under component %s", k, c, c2)
			}
		}
		if otherValid && other != name {
			if q := ns.Prefix(c, other); strings.HasPrefix(k, q) || strings.HasPrefix(q, p) {
				t.Fatalf("names %q and %q overlap: key %q, prefixes %q and %q", name, other, k, p, q)
			}
		}
		// other as an environment: a different env never sees the key.
		if ns2 := (backends.Namespace{Root: ns.Root, Env: other}); other != def.Env && ns2.Validate() == nil {
			if strings.HasPrefix(k, ns2.Prefix(c, name)) {
				t.Fatalf("key %q of env %q lies in env %q", k, def.Env, other)
			}
		}
	}
}

// checkLayerKeys checks that a layer key splits back into its parts, so no
// component or instance name can reach into another's settings.
func checkLayerKeys(t *testing.T, component, instance, key string) {
	t.Helper()
	if got := backends.LayerKey(backends.LayerSystem, component, instance, key); got != "system/"+key {
		t.Fatalf("system layer key %q", got)
	}
	for layer, want := range map[string][]string{
		backends.LayerComponent: {"component", component, key},
		backends.LayerInstance:  {"instance", component, instance, key},
	} {
		full := backends.LayerKey(layer, component, instance, key)
		if got := strings.SplitN(full, "/", len(want)); !slices.Equal(got, want) {
			t.Fatalf("%s layer key %q splits into %q, want %q", layer, full, got, want)
		}
		if !strings.HasPrefix(full, backends.LayerKey(layer, component, instance, "")) {
			t.Fatalf("%s layer key %q is outside its prefix", layer, full)
		}
	}
}
