package runtime_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/runtime"
)

// FuzzParseSpec parses arbitrary YAML as a node spec. ParseSpec and
// Validate never panic and fail only with an *InvalidArgumentError (which
// matches ErrInvalidArgument), and defaults are stable: WithDefaults is
// idempotent, Validate answers the same before and after it, and a spec
// that validates still validates with its defaults filled in.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"",
		"env: prod\nroot: acme\nnode_id: n1\n",
		"redis:\n  url: redis://127.0.0.1:6379/0\nbackends:\n  cache: redis\n  lock: redis\n",
		"etcd:\n  endpoints: [127.0.0.1:2379]\ncomponents:\n  lock_ttl: 50ms\n",
		"components:\n  lock_ttl: 10\n",
		"components:\n  op_timeout: soon\n  cache_max_batch: -1\n",
		"connector:\n  backoff_initial: 2s\n  backoff_max: 1s\n",
		"redis_service: cache-redis\nbackends:\n  discovery: etcd\nembedded:\n  enabled: true\nredis: {}\n",
		"envv: typo\n",
		"env: [a, b]\n",
		"redis:\n  addrs: ['']\n  tls:\n    ca_file: ca.pem\n",
		"a: &x [*x]\n",
		"- 1\n- 2\n",
		"env: dev\n---\nenv: prod\n",
		"\tbad: indent\n",
		"components: {max_value_size: 1e9}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := runtime.ParseSpec(data)
		checkInvalid(t, "ParseSpec", err)
		if err != nil {
			return
		}
		keepTLSFilesLocal(t, &spec)
		verr := spec.Validate()
		checkInvalid(t, "Validate", verr)

		full := spec.WithDefaults()
		if again := full.WithDefaults(); !reflect.DeepEqual(again, full) {
			t.Fatalf("WithDefaults is not idempotent:\n%+v\n%+v", full, again)
		}
		ferr := full.Validate()
		if (verr == nil) != (ferr == nil) || (verr != nil && verr.Error() != ferr.Error()) {
			t.Fatalf("Validate before defaults: %v; after: %v", verr, ferr)
		}
	})
}

// checkInvalid fails unless err is nil or an invalid argument naming its field.
func checkInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ia *backends.InvalidArgumentError
	if !errors.Is(err, backends.ErrInvalidArgument) || !errors.As(err, &ia) || ia.Field == "" {
		t.Fatalf("%s: error %q (%T) is not an invalid argument naming a field", what, err, err)
	}
}

// keepTLSFilesLocal points every TLS file the spec names at a missing file
// of the test's own, so Validate (which reads them) never opens a path the
// fuzzer made up, such as a device that never ends.
func keepTLSFilesLocal(t *testing.T, spec *runtime.Spec) {
	dir := t.TempDir()
	local := func(p *string) {
		if *p != "" {
			*p = filepath.Join(dir, "missing.pem")
		}
	}
	if spec.Redis != nil && spec.Redis.TLS != nil {
		local(&spec.Redis.TLS.CAFile)
		local(&spec.Redis.TLS.CertFile)
		local(&spec.Redis.TLS.KeyFile)
	}
	if spec.Etcd != nil && spec.Etcd.TLS != nil {
		local(&spec.Etcd.TLS.CAFile)
		local(&spec.Etcd.TLS.CertFile)
		local(&spec.Etcd.TLS.KeyFile)
	}
}
