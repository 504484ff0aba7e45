package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// client returns the connected client, or ErrClosed after Disconnect and
// ErrUnavailable before the first Connect. Every component calls it per
// operation so it follows reconnects.
func (c *Connector) client() (goredis.UniversalClient, error) {
	if c == nil {
		return nil, fmt.Errorf("redis: %w: no connector", backends.ErrUnavailable)
	}
	c.mu.RLock()
	cl, closed := c.cl, c.closed
	c.mu.RUnlock()
	switch {
	case cl != nil:
		return cl, nil
	case closed:
		return nil, fmt.Errorf("redis: connector disconnected: %w", backends.ErrClosed)
	}
	return nil, fmt.Errorf("redis: connector not connected: %w", backends.ErrUnavailable)
}

// ctxErr is ctx.Err(), or context.DeadlineExceeded once ctx's deadline has
// passed although its timer has not fired yet: go-redis sets socket
// deadlines from ctx's deadline, so an i/o timeout can come back a moment
// before ctx reports that it ended.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// mapErr turns a go-redis error into the shared sentinels, keeping the cause:
// redis.Nil → ErrNotFound; a closed client → ErrClosed; the caller's context
// ending → that context error; refused credentials → ErrUnauthenticated; a
// database the server does not have → ErrInvalidArgument; transport and
// server-not-ready errors → ErrUnavailable. Other server replies (e.g.
// WRONGTYPE) are wrapped as they are. Errors already carrying a baton
// sentinel pass through with op added.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("%s: %w", op, backends.ErrNotFound)
	case isBatonErr(err):
		return fmt.Errorf("%s: %w", op, err)
	case isRefusal(err):
		return refusal(op, err)
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("%s: %w: %w", op, backends.ErrClosed, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case isUnavailable(err):
		return backends.Unavailable(op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isRefusal reports the server's refusal of the connection's settings,
// which go-redis meets when it sets up a connection (AUTH/HELLO, SELECT).
func isRefusal(err error) bool { return isAuthRefusal(err) || isDBRefusal(err) }

func isAuthRefusal(err error) bool {
	return goredis.IsAuthError(err) || goredis.HasErrorPrefix(err, "ERR invalid password") ||
		strings.Contains(err.Error(), "invalid username-password pair")
}

func isDBRefusal(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "DB index is out of range") || strings.Contains(msg, "SELECT is not allowed")
}

// refusal turns a refusal (isRefusal) into its sentinel: wrong or missing
// credentials are ErrUnauthenticated, a database index the server does not
// have is ErrInvalidArgument naming redis.db.
func refusal(op string, err error) error {
	if isDBRefusal(err) {
		return fmt.Errorf("%s: %w", op, &backends.InvalidArgumentError{
			Field: "redis.db", Value: "(as configured)", Reason: "refused by the server: " + err.Error()})
	}
	return backends.Unauthenticated(op, err)
}

func isBatonErr(err error) bool {
	for _, s := range backends.Sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// isUnavailable reports transport failures and the server replies that mean
// "not serving right now".
func isUnavailable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ne), errors.As(err, &oe),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return true
	case goredis.IsLoadingError(err), goredis.IsReadOnlyError(err),
		goredis.IsClusterDownError(err), goredis.IsTryAgainError(err),
		goredis.IsMasterDownError(err),
		goredis.HasErrorPrefix(err, "BUSY"), goredis.HasErrorPrefix(err, "NOREPLICAS"),
		goredis.HasErrorPrefix(err, "MASTERDOWN"):
		return true
	}
	var re goredis.Error
	// Anything that is not a server reply is a client/transport failure.
	return !errors.As(err, &re)
}

// replyLost reports whether err means a command may have run on the server
// without its reply reaching us: anything but an error reply from Redis
// itself (timeouts, cancelled contexts, broken connections).
func replyLost(err error) bool {
	var reply goredis.Error
	return err != nil && !errors.As(err, &reply)
}
