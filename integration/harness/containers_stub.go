//go:build !containers

package harness

import (
	"context"
	"errors"
	"testing"
)

// containersCompiled tells provider that this build has no containers provider: without the
// containers build tag, testcontainers-go and the Docker client are not compiled (nor
// downloaded) at all.
const containersCompiled = false

// errNoContainers is what the stubs below report; provider never picks containers in this
// build, so they are not reached.
var errNoContainers = errors.New("harness: built without the containers build tag")

func probeDocker(context.Context) error { return errNoContainers }

func startRedisContainer(t testing.TB, _ []RedisOption) *Redis {
	t.Helper()
	t.Fatalf("%v", errNoContainers)
	return nil
}

func startEtcdContainer(t testing.TB, _ bool, _ []EtcdOption) *Etcd {
	t.Helper()
	t.Fatalf("%v", errNoContainers)
	return nil
}
