package redis_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/harness"
)

// serverURL is the redis-server the examples talk to: one started for the
// test run by TestMain (in a program, the address of your Redis).
var serverURL string

// TestMain starts the examples' server, runs every test and example of the
// package, and fails the run if any of them left a goroutine behind.
func TestMain(m *testing.M) {
	srv, err := harness.LaunchRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis examples:", err)
		os.Exit(1)
	}
	serverURL = srv.URL()
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "redis examples:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The shortest correct use: one Connector per process, components built on
// it, a lock whose fencing token guards the storage it protects.
func Example() {
	ctx := context.Background()
	conn, err := redis.NewConnector(redis.Config{URL: serverURL}, nil)
	if err != nil {
		fmt.Println(err) // a bad config: backends.ErrInvalidArgument
		return
	}
	if err := conn.Connect(ctx); err != nil {
		fmt.Println(err) // unreachable: backends.ErrUnavailable
		return
	}
	defer func() { _ = conn.Disconnect(context.Background()) }()

	ns := backends.Namespace{Env: "prod"}
	cache, err := redis.NewCache(conn, backends.CacheOptions{Namespace: ns, Name: "users"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = cache.Close() }()
	if err := cache.Set(ctx, "42", []byte("ada"), time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	v, err := cache.Get(ctx, "42")
	fmt.Println(string(v), err)

	locks, err := redis.NewLocker(conn, backends.LockerOptions{Namespace: ns})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = locks.Close() }()
	lease, err := locks.Acquire(ctx, "billing", backends.LockOptions{TTL: 10 * time.Second, AutoRenew: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = lease.Release(context.Background()) }()
	// Pass lease.Token() to the storage you protect, and stop writing once
	// lease.Done() is closed.
	fmt.Println("holding", lease.Name(), "with a fencing token:", lease.Token() > 0)
	// Output:
	// ada <nil>
	// holding billing with a fencing token: true
}
