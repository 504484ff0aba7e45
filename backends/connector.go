package backends

import "context"

// Connector owns the one shared client of a backend on a node. Every
// component on that backend uses the same Connector (and so the same
// connection pool). The concrete types (redis.Connector, etcd.Connector) add a
// typed accessor for the client.
type Connector interface {
	// Backend returns "redis" or "etcd".
	Backend() string
	// Connect creates the client and verifies the server answers within ctx.
	// It returns ErrUnavailable (wrapped) when the server cannot be reached
	// and ErrInvalidArgument for a bad configuration. Calling Connect on a
	// connected Connector is a no-op.
	Connect(ctx context.Context) error
	// Disconnect closes the client. Components using it then fail with
	// ErrClosed or ErrUnavailable; later calls to Disconnect are no-ops.
	Disconnect(ctx context.Context) error
	// HealthCheck round-trips to the server and answers within ctx's
	// deadline: nil when healthy, ErrUnavailable when the server is down,
	// ErrClosed after Disconnect.
	HealthCheck(ctx context.Context) error
}
