package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// errNotConnected is the cause reported before Connect succeeded.
var errNotConnected = errors.New("etcd: connector not connected")

// errClientClosed is the cause reported when a component still holds a client
// that its connector has since closed.
var errClientClosed = errors.New("etcd: client closed")

// client returns the connector's live client. It fails with ErrClosed after
// Disconnect and with ErrUnavailable before Connect, so components that take
// the client lazily at call time report a sensible error either way.
func (c *Connector) client() (*clientv3.Client, error) {
	if c == nil {
		return nil, backends.Unavailable("etcd", errNotConnected)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cli == nil {
		if c.closed {
			return nil, fmt.Errorf("etcd: connector: %w", backends.ErrClosed)
		}
		return nil, backends.Unavailable("etcd", errNotConnected)
	}
	return c.cli, nil
}

// opContext bounds one round trip by the connector's RequestTimeout when the
// caller's ctx has no sooner deadline: clientv3 waits for a ready connection
// (WaitForReady), so an unbounded call against a dead server would otherwise
// block forever. When every endpoint has already failed its last connection
// attempt (gRPC TransientFailure) the returned ctx is already past its
// deadline, so the call fails at once and mapCtxErr reports ErrUnavailable
// instead of waiting the whole bound. A call already in flight when the
// server dies still waits up to the bound.
func (c *Connector) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := defaultRequestTimeout
	if c != nil && c.cfg.RequestTimeout > 0 {
		d = c.cfg.RequestTimeout
	}
	if c != nil && c.down() {
		return context.WithDeadlineCause(ctx, time.Now(), errNoEndpoint)
	}
	return context.WithTimeout(ctx, d)
}

// down reports whether the live client's connection is in TransientFailure.
func (c *Connector) down() bool {
	cli := c.Client()
	if cli == nil {
		return false
	}
	cc := cli.ActiveConnection()
	return cc != nil && cc.GetState() == connectivity.TransientFailure
}

// mapErr turns a clientv3/gRPC error into one wrapping Baton's sentinels,
// keeping the original as the cause. It does not know the caller's ctx:
// context.Canceled stays context.Canceled, and context.DeadlineExceeded is
// reported as ErrUnavailable that still matches context.DeadlineExceeded. Use
// mapCtxErr when the caller's ctx is at hand.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range backends.Sentinels {
		if errors.Is(err, s) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, context.DeadlineExceeded):
		return backends.Unavailable(op, err)
	}
	err = rpctypes.Error(err)
	switch {
	case errors.Is(err, rpctypes.ErrCompacted), errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%s: %w: %w", op, backends.ErrCompacted, err)
	case errors.Is(err, rpctypes.ErrTooManyOps), errors.Is(err, rpctypes.ErrRequestTooLarge),
		errors.Is(err, rpctypes.ErrDuplicateKey), errors.Is(err, rpctypes.ErrEmptyKey),
		errors.Is(err, rpctypes.ErrKeyNotFound):
		return fmt.Errorf("%s: %w: %w", op, backends.ErrInvalidArgument, err)
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%s: %w: %w", op, backends.ErrNotHeld, err)
	case isAuthRefusal(err):
		return backends.Unauthenticated(op, err)
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Canceled {
		// A gRPC cancel that is not the caller's: the client connection is
		// closing because the connector was disconnected underneath us.
		return fmt.Errorf("%s: %w: %w: %w", op, backends.ErrUnavailable, backends.ErrClosed, err)
	}
	if strings.Contains(err.Error(), "client connection is closing") {
		return fmt.Errorf("%s: %w: %w: %w", op, backends.ErrUnavailable, backends.ErrClosed, err)
	}
	return backends.Unavailable(op, err)
}

// isAuthRefusal reports etcd's refusal of the credentials: a wrong user or
// password, or none given to a server with authentication enabled.
func isAuthRefusal(err error) bool {
	err = rpctypes.Error(err)
	return errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrUserEmpty)
}

// mapCtxErr is mapErr that knows the caller's ctx: when that ctx has ended,
// the result wraps ctx.Err() (errors.Is(err, context.Canceled) or
// context.DeadlineExceeded holds); a deadline of our own (RequestTimeout,
// HealthCheckTimeout) or a closed client is ErrUnavailable instead.
func mapCtxErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		for _, s := range backends.Sentinels {
			if errors.Is(err, s) {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if errors.Is(err, context.Canceled) {
		// Not the caller's cancel: the client's own context ended because
		// the connector was disconnected.
		return fmt.Errorf("%s: %w: %w: %w", op, backends.ErrUnavailable, backends.ErrClosed, errClientClosed)
	}
	return mapErr(op, err)
}
