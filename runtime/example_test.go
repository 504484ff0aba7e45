package runtime_test

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/typed"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/embedded"
)

// A node on the embedded default: an etcd server inside the process.
func Example() {
	ctx := context.Background()
	node, err := runtime.New(runtime.Spec{Env: "dev"}, embedded.Option())
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = node.Stop(ctx) }()

	cache := node.Cache("sessions")
	_ = cache.Set(ctx, "u42", []byte("alice"), time.Minute)
	v, _ := cache.Get(ctx, "u42")
	fmt.Println(string(v))
	// Output: alice
}

// Locks carry a fencing token that strictly increases per lock name.
func ExampleNode_Locks() {
	ctx := context.Background()
	node, err := runtime.New(runtime.Spec{Env: "dev"}, embedded.Option())
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = node.Stop(ctx) }()

	first, _ := node.Locks().Acquire(ctx, "billing", backends.LockOptions{TTL: 10 * time.Second})
	_ = first.Release(ctx)
	second, _ := node.Locks().Acquire(ctx, "billing", backends.LockOptions{TTL: 10 * time.Second})
	defer func() { _ = second.Release(ctx) }()
	fmt.Println(second.Token() > first.Token())
	// Output: true
}

// A typed cache over any backends.Cache.
func ExampleCacheClient_typed() {
	ctx := context.Background()
	node, err := runtime.New(runtime.Spec{Env: "dev"}, embedded.Option())
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = node.Stop(ctx) }()

	type user struct{ Name string }
	users := typed.New[user](node.Cache("users"), nil)
	_ = users.Set(ctx, "u1", user{Name: "Ada"}, 0)
	u, _ := users.Get(ctx, "u1")
	fmt.Println(u.Name)
	// Output: Ada
}
