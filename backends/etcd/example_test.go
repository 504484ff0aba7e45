package etcd_test

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
)

// The shortest correct use: one Connector per process, components built on
// it. Components take the client from the connector at every call, so they
// follow a reconnect.
func Example() {
	ctx := context.Background()
	conn, err := etcd.NewConnector(etcd.Config{Endpoints: endpoints}, nil)
	if err != nil {
		fmt.Println(err) // a bad config: backends.ErrInvalidArgument
		return
	}
	if err := conn.Connect(ctx); err != nil {
		fmt.Println(err) // unreachable: backends.ErrUnavailable
		return
	}
	defer func() { _ = conn.Disconnect(context.Background()) }()

	cache, err := etcd.NewCache(conn, backends.CacheOptions{
		Namespace: backends.Namespace{Env: "dev"}, Name: "sessions"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = cache.Close() }()
	if err := cache.Set(ctx, "user:1", []byte("ada"), time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	v, err := cache.Get(ctx, "user:1")
	fmt.Println(string(v), err)
	// Output:
	// ada <nil>
}
