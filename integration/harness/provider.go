package harness

import (
	"os"
	"testing"
)

// containersEnv is the environment variable that asks for the testcontainers provider.
const containersEnv = "BATON_TEST_CONTAINERS"

// provider returns the name of the provider that starts servers. Only "local" (processes on
// this machine, or in this process for embedded etcd) is compiled into this build, so when
// BATON_TEST_CONTAINERS=1 asks for testcontainers it says so in the test log and local
// processes are used instead. testcontainers-go is deliberately not a dependency: it is heavy,
// and the local provider is the one CI uses.
func provider(t testing.TB) string {
	t.Helper()
	if os.Getenv(containersEnv) == "1" {
		t.Logf("harness: %s=1, but the testcontainers provider is not compiled into this build; using local processes", containersEnv)
	}
	return "local"
}
