package actors_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/embedded"
)

// startExampleNode starts a node on the embedded etcd for the examples.
func startExampleNode(ctx context.Context) *runtime.Node {
	node, err := runtime.New(runtime.Spec{Env: "dev"}, embedded.Option())
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	return node
}

// Request blocks until the actor answers, within ctx: the form for plain Go
// code. The response's status comes back as the backends sentinel errors.
func ExampleRequest() {
	ctx := context.Background()
	node := startExampleNode(ctx)
	defer func() { _ = node.Stop(ctx) }()
	root, cache := node.ActorSystem().Root, node.PIDs().Cache

	_, err := actors.Request[*cachev1.SetResponse](ctx, root, cache,
		&cachev1.SetRequest{Name: "sessions", Key: "u42", Value: []byte("alice")})
	if err != nil {
		panic(err)
	}
	resp, err := actors.Request[*cachev1.GetResponse](ctx, root, cache, &cachev1.GetRequest{Name: "sessions", Key: "u42"})
	fmt.Println(string(resp.GetValue()), err)
	_, err = actors.Request[*cachev1.GetResponse](ctx, root, cache, &cachev1.GetRequest{Name: "sessions", Key: "nobody"})
	fmt.Println(errors.Is(err, backends.ErrNotFound))
	// Output:
	// alice <nil>
	// true
}

// greeter is an actor of the application that uses Baton's cache without
// ever blocking its mailbox.
type greeter struct {
	cache *actor.PID
	out   chan<- string
}

func (g *greeter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case string: // a user id to greet
		actors.RequestAsync(ctx, g.cache, &cachev1.GetRequest{Name: "names", Key: m}, time.Second,
			func(resp *cachev1.GetResponse, err error) {
				// Runs on the greeter's goroutine when the answer is in.
				switch {
				case errors.Is(err, backends.ErrNotFound):
					g.out <- "who is " + m + "?"
				case err != nil:
					g.out <- "error: " + err.Error()
				default:
					g.out <- "hello, " + string(resp.GetValue())
				}
			})
	}
}

// RequestAsync is the form for code inside an actor: it returns at once,
// and the typed answer is handed to a function that runs on the actor's
// goroutine between its other messages.
func ExampleRequestAsync() {
	ctx := context.Background()
	node := startExampleNode(ctx)
	defer func() { _ = node.Stop(ctx) }()
	sys := node.ActorSystem()
	_ = node.Cache("names").Set(ctx, "u1", []byte("Ada"), 0)

	out := make(chan string, 2)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &greeter{cache: node.PIDs().Cache, out: out}
	}), "greeter")
	if err != nil {
		panic(err)
	}
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	sys.Root.Send(pid, "u1")
	fmt.Println(<-out)
	sys.Root.Send(pid, "u2")
	fmt.Println(<-out)
	// Output:
	// hello, Ada
	// who is u2?
}

// counter asks with ctx.Request and handles the response in Receive, like
// any other message: the plain protoactor way, with the status checked by
// hand.
type counter struct {
	cache *actor.PID
	out   chan<- string
}

func (c *counter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(c.cache, &cachev1.ExistsRequest{Name: "names", Key: "u1"})
	case *cachev1.ExistsResponse:
		if err := m.GetStatus().Err(); err != nil {
			c.out <- "error: " + err.Error()
			return
		}
		c.out <- fmt.Sprintf("u1 exists: %v", m.GetExists())
	}
}

// Non-blocking messaging without a helper: ctx.Request sends the request
// with the actor as the sender, and the response arrives in Receive.
func Example_receiveResponse() {
	ctx := context.Background()
	node := startExampleNode(ctx)
	defer func() { _ = node.Stop(ctx) }()
	sys := node.ActorSystem()
	_ = node.Cache("names").Set(ctx, "u1", []byte("Ada"), 0)

	out := make(chan string, 1)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &counter{cache: node.PIDs().Cache, out: out}
	}), "counter")
	if err != nil {
		panic(err)
	}
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	fmt.Println(<-out)
	// Output: u1 exists: true
}
