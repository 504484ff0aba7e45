package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
)

// Defaults of DiscoveryOptions.RetryMin and RetryMax.
const (
	defaultDiscoveryRetryMin = 100 * time.Millisecond
	defaultDiscoveryRetryMax = 5 * time.Second
)

// closeRevokeTimeout bounds every best-effort lease revocation (Close, a
// replaced registration, a failed write).
const closeRevokeTimeout = 2 * time.Second

// watchBuffer is the capacity of the channels returned by Watch/WatchWith.
const watchBuffer = 64

// registry is the ServiceDiscovery NewDiscovery returns.
type registry struct {
	conn *Connector
	opts backends.DiscoveryOptions
	log  *slog.Logger

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // keepers and watches

	// ops serializes Register/Deregister/Close (a ctx-aware mutex): an
	// update stops the old keeper before the new lease exists.
	ops chan struct{}

	mu     sync.Mutex // guards regs and closed
	regs   map[string]*registration
	closed bool

	cbMu sync.Mutex // OnRegistration is never called concurrently
}

var _ backends.ServiceDiscovery = (*registry)(nil)

// NewDiscovery returns service discovery in opts.Namespace on conn. Each
// instance is a key on a lease of its own, kept alive in the background and
// written again when it is lost (both reported to
// DiscoveryOptions.OnRegistration). Close stops the keep-alives and watches
// and deregisters what is still registered. The connector may still be
// unconnected; calls then fail with ErrUnavailable.
func NewDiscovery(conn *Connector, opts backends.DiscoveryOptions) (backends.ServiceDiscovery, error) {
	s, err := newRegistry(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newRegistry is NewDiscovery with the concrete type, for this package's tests.
func newRegistry(conn *Connector, opts backends.DiscoveryOptions) (*registry, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "<nil>", "must not be nil")
	}
	opts.Namespace = opts.Namespace.WithDefaults()
	if err := opts.Namespace.Validate(); err != nil {
		return nil, err
	}
	if err := backends.ValidateTTL("retry min", opts.RetryMin); err != nil {
		return nil, err
	}
	if err := backends.ValidateTTL("retry max", opts.RetryMax); err != nil {
		return nil, err
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = defaultDiscoveryRetryMin
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = max(defaultDiscoveryRetryMax, opts.RetryMin)
	}
	if opts.RetryMax < opts.RetryMin {
		return nil, backends.Invalid("retry max", opts.RetryMax, "must not be below retry min")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &registry{
		conn:   conn,
		opts:   opts,
		log:    conn.Logger(),
		ctx:    ctx,
		cancel: cancel,
		ops:    make(chan struct{}, 1),
		regs:   make(map[string]*registration),
	}, nil
}

func (d *registry) prefix(service string) string {
	return d.opts.Namespace.Prefix(backends.ComponentDiscovery, service)
}

func (d *registry) errClosed(op string) error {
	return fmt.Errorf("etcd: discovery %s: %w", op, backends.ErrClosed)
}

func (d *registry) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// lockOps takes the ops semaphore, or fails when ctx ends first.
func (d *registry) lockOps(ctx context.Context) error {
	select {
	case d.ops <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *registry) unlockOps() { <-d.ops }

// HealthCheck reports whether etcd answers (the connector's health check).
func (d *registry) HealthCheck(ctx context.Context) error {
	if d.isClosed() {
		return d.errClosed("health check")
	}
	return d.conn.HealthCheck(ctx)
}

// Close stops every keeper and watch (their channels close), then revokes
// the leases of the registrations still held, best-effort within 2s, so the
// instances disappear at once. Later calls return nil; other methods return
// ErrClosed.
func (d *registry) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	// Wait for a Register in flight (it aborts: its ctx ends with d.ctx).
	d.ops <- struct{}{}
	d.mu.Lock()
	regs := d.regs
	d.regs = map[string]*registration{}
	d.mu.Unlock()
	d.wg.Wait()
	<-d.ops

	cli, err := d.conn.client()
	if err != nil || len(regs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeRevokeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cli.Revoke(ctx, r.lease); err != nil {
				d.log.Debug("etcd discovery: revoke on close", "service", r.svc.ID, "error", err)
			}
		}()
	}
	wg.Wait()
	return nil
}
