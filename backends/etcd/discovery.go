package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// Discovery is backends.ServiceDiscovery on etcd.
//
// An instance is the key <root>/<env>/discovery/<service>/<id> holding the
// ServiceInfo as JSON, attached to a lease of its own with the registration
// TTL (whole seconds, at least 2s). A background keeper per registration
// keeps the lease alive with clientv3's KeepAlive (a renewal every TTL/3) and
// watches the instance key. The registration counts as lost when
//
//   - the keep-alive ends (the lease expired, or etcd answered "lease not
//     found", as it does after a restart with wiped data) and a direct check
//     does not find the key still attached to the live lease, or
//   - the key is deleted by someone else.
//
// The keeper then reports RegistrationLost, grants a new lease and writes the
// key again, retrying forever with jittered exponential backoff between
// RetryMin and RetryMax, and reports RegistrationRestored.
//
// Watch lists the service (the snapshot, at revision R) and follows it from
// R+1 on a watch stream of its own (see resumableWatch): after a broken
// stream it resumes from the last delivered revision + 1; when that history
// is compacted, the cluster ID changed, or the server reports a revision
// below one already seen (it came back with wiped data), it lists again and
// sends exactly the difference to the instances the watcher holds.
type Discovery struct {
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

var _ backends.ServiceDiscovery = (*Discovery)(nil)

// NewDiscovery returns service discovery in opts.Namespace on conn. The
// connector may still be unconnected; calls then fail with ErrUnavailable.
func NewDiscovery(conn *Connector, opts backends.DiscoveryOptions) (*Discovery, error) {
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
	return &Discovery{
		conn:   conn,
		opts:   opts,
		log:    conn.Logger(),
		ctx:    ctx,
		cancel: cancel,
		ops:    make(chan struct{}, 1),
		regs:   make(map[string]*registration),
	}, nil
}

func (d *Discovery) prefix(service string) string {
	return d.opts.Namespace.Prefix(backends.ComponentDiscovery, service)
}

func (d *Discovery) errClosed(op string) error {
	return fmt.Errorf("etcd: discovery %s: %w", op, backends.ErrClosed)
}

func (d *Discovery) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// lockOps takes the ops semaphore, or fails when ctx ends first.
func (d *Discovery) lockOps(ctx context.Context) error {
	select {
	case d.ops <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Discovery) unlockOps() { <-d.ops }

// Register publishes svc under a fresh lease of ttl (0 = the default, 10s;
// rounded up to whole seconds, at least 2s) and keeps it alive until
// Deregister or Close; see the type doc for self-healing. Registering an ID
// this value already holds replaces that registration (new value, new
// lease); if the replacement cannot be written, the old one stays in force.
// Errors: ErrInvalidArgument, ErrUnavailable, ErrClosed, or ctx's error.
func (d *Discovery) Register(ctx context.Context, svc backends.ServiceInfo, ttl time.Duration) error {
	const op = "etcd: discovery register"
	if err := svc.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateTTL("ttl", ttl); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if ttl == 0 {
		ttl = backends.DefaultRegistrationTTL
	}
	value, err := json.Marshal(svc)
	if err != nil {
		return fmt.Errorf("%s: %w", op, backends.Invalid("service", svc.ID, "cannot encode: "+err.Error()))
	}
	if err := d.lockOps(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer d.unlockOps()
	if d.isClosed() {
		return d.errClosed("register")
	}
	r := &registration{
		d:     d,
		svc:   svc,
		key:   d.prefix(svc.Name) + svc.ID,
		value: value,
		ttl:   leaseSeconds(ttl),
	}
	d.mu.Lock()
	old := d.regs[svc.ID]
	d.mu.Unlock()
	if old != nil {
		// The old keeper must not restore the old value over the new one.
		old.stop()
	}
	mctx, cancel := mergeDone(ctx, d.ctx)
	err = r.establish(mctx)
	cancel()
	if d.isClosed() {
		// Close ran meanwhile and will revoke old; r must not outlive it.
		if err == nil {
			d.revoke(r.lease)
		}
		return d.errClosed("register")
	}
	if err != nil {
		if old != nil {
			d.start(old)
		}
		return mapCtxErr(ctx, op, err)
	}
	if old != nil {
		d.revoke(old.lease)
	}
	d.mu.Lock()
	d.regs[svc.ID] = r
	d.mu.Unlock()
	d.start(r)
	return nil
}

// Deregister deletes the instance and revokes its lease at once. It stops
// keeping the instance alive even when etcd cannot be reached (the error is
// then returned and the key expires within its TTL). ErrNotFound when this
// value holds no registration with that ID.
func (d *Discovery) Deregister(ctx context.Context, serviceID string) error {
	const op = "etcd: discovery deregister"
	if err := backends.ValidateName("service id", serviceID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := d.lockOps(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer d.unlockOps()
	d.mu.Lock()
	closed := d.closed
	r := d.regs[serviceID]
	delete(d.regs, serviceID)
	d.mu.Unlock()
	if closed {
		return d.errClosed("deregister")
	}
	if r == nil {
		return fmt.Errorf("%s %q: %w", op, serviceID, backends.ErrNotFound)
	}
	r.stop()
	cli, err := d.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	octx, cancel := d.conn.opContext(ctx)
	defer cancel()
	// Delete only while the key is still ours: someone else may have
	// registered the same ID meanwhile.
	_, err = cli.Txn(octx).
		If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", r.lease)).
		Then(clientv3.OpDelete(r.key)).
		Commit()
	if err != nil {
		return mapCtxErr(ctx, op, err)
	}
	if _, err := cli.Revoke(octx, r.lease); err != nil && !errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
		return mapCtxErr(ctx, op, err)
	}
	return nil
}

// Discover returns the live instances of service, sorted by ID (an empty
// slice when there are none). Values that are not a ServiceInfo are skipped.
func (d *Discovery) Discover(ctx context.Context, service string) ([]backends.ServiceInfo, error) {
	const op = "etcd: discovery discover"
	if err := backends.ValidateName("service name", service); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed("discover")
	}
	resp, err := d.list(ctx, service)
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	view := d.decodeAll(service, resp.Kvs)
	return sortedInstances(view), nil
}

func (d *Discovery) list(ctx context.Context, service string) (*clientv3.GetResponse, error) {
	cli, err := d.conn.client()
	if err != nil {
		return nil, err
	}
	octx, cancel := d.conn.opContext(ctx)
	defer cancel()
	return cli.Get(octx, d.prefix(service), clientv3.WithPrefix())
}

// decode parses one instance; ok is false for foreign or corrupt values.
func (d *Discovery) decode(service string, kv *mvccpb.KeyValue) (id string, svc backends.ServiceInfo, ok bool) {
	id = strings.TrimPrefix(string(kv.Key), d.prefix(service))
	if err := json.Unmarshal(kv.Value, &svc); err != nil {
		d.log.Warn("etcd discovery: skipping an undecodable instance", "key", string(kv.Key), "error", err)
		return id, svc, false
	}
	// The key is authoritative: a hand-written value cannot pose as
	// another instance or service.
	svc.ID, svc.Name = id, service
	return id, svc, true
}

func (d *Discovery) decodeAll(service string, kvs []*mvccpb.KeyValue) map[string]backends.ServiceInfo {
	view := make(map[string]backends.ServiceInfo, len(kvs))
	for _, kv := range kvs {
		if id, svc, ok := d.decode(service, kv); ok {
			view[id] = svc
		}
	}
	return view
}

func sortedInstances(view map[string]backends.ServiceInfo) []backends.ServiceInfo {
	out := make([]backends.ServiceInfo, 0, len(view))
	for _, svc := range view {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Watch lists service (the ServiceSnapshot event, sent first) and then sends
// ServiceAdded, ServiceUpdated and ServiceRemoved events until ctx ends or
// the Discovery is closed; the channel is then closed. See the type doc for
// how reconnects, compaction and wiped servers are handled. A write that
// leaves an instance as it was sends nothing. The listing happens before
// Watch returns, so an unreachable etcd is reported as ErrUnavailable.
func (d *Discovery) Watch(ctx context.Context, service string) (<-chan backends.ServiceEvent, error) {
	const op = "etcd: discovery watch"
	if err := backends.ValidateName("service name", service); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed("watch")
	}
	resp, err := d.list(ctx, service)
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	view := d.decodeAll(service, resp.Kvs)
	rev := resp.Header.Revision
	out := make(chan backends.ServiceEvent, watchBuffer)
	wctx, cancel := mergeDone(ctx, d.ctx)

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cancel()
		return nil, d.errClosed("watch")
	}
	d.wg.Add(1)
	d.mu.Unlock()

	sw := &serviceWatch{d: d, service: service, view: view, out: out}
	prefix := d.prefix(service)
	w := &resumableWatch{
		conn:     d.conn,
		log:      d.log,
		key:      prefix,
		end:      clientv3.GetPrefixRangeEnd(prefix),
		prevKV:   true,
		next:     rev + 1,
		seen:     rev,
		cluster:  resp.Header.ClusterId,
		onEvents: sw.events,
		onResync: sw.resync,
	}
	go func() {
		defer d.wg.Done()
		defer close(out)
		defer cancel()
		snap := backends.ServiceEvent{Type: backends.ServiceSnapshot, Instances: sortedInstances(view), Revision: uint64(rev)}
		if sw.send(wctx, snap) != nil {
			return
		}
		w.run(wctx)
	}()
	return out, nil
}

// serviceWatch is the state of one Watch: the instances the watcher holds.
type serviceWatch struct {
	d       *Discovery
	service string
	view    map[string]backends.ServiceInfo
	out     chan<- backends.ServiceEvent
}

func (s *serviceWatch) send(ctx context.Context, ev backends.ServiceEvent) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *serviceWatch) events(ctx context.Context, evs []*mvccpb.Event) error {
	for _, ev := range evs {
		rev := uint64(ev.Kv.ModRevision)
		switch ev.Type {
		case mvccpb.Event_PUT:
			id, svc, ok := s.d.decode(s.service, ev.Kv)
			if !ok {
				// An instance overwritten with garbage is gone for us.
				if err := s.remove(ctx, id, rev); err != nil {
					return err
				}
				continue
			}
			if err := s.upsert(ctx, id, svc, rev); err != nil {
				return err
			}
		case mvccpb.Event_DELETE:
			id := strings.TrimPrefix(string(ev.Kv.Key), s.d.prefix(s.service))
			if err := s.remove(ctx, id, rev); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *serviceWatch) upsert(ctx context.Context, id string, svc backends.ServiceInfo, rev uint64) error {
	old, had := s.view[id]
	if had && reflect.DeepEqual(old, svc) {
		return nil
	}
	s.view[id] = svc
	typ := backends.ServiceAdded
	if had {
		typ = backends.ServiceUpdated
	}
	return s.send(ctx, backends.ServiceEvent{Type: typ, Service: svc, Revision: rev})
}

func (s *serviceWatch) remove(ctx context.Context, id string, rev uint64) error {
	old, had := s.view[id]
	if !had {
		return nil
	}
	delete(s.view, id)
	return s.send(ctx, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: old, Revision: rev})
}

// resync sends the difference between the view and a fresh listing:
// removals first, then additions and updates, each in ID order.
func (s *serviceWatch) resync(ctx context.Context, kvs []*mvccpb.KeyValue, rev int64) error {
	now := s.d.decodeAll(s.service, kvs)
	for _, svc := range sortedInstances(s.view) {
		if _, ok := now[svc.ID]; !ok {
			if err := s.remove(ctx, svc.ID, uint64(rev)); err != nil {
				return err
			}
		}
	}
	for _, svc := range sortedInstances(now) {
		if err := s.upsert(ctx, svc.ID, svc, uint64(rev)); err != nil {
			return err
		}
	}
	return nil
}

// HealthCheck reports whether etcd answers (the connector's health check).
func (d *Discovery) HealthCheck(ctx context.Context) error {
	if d.isClosed() {
		return d.errClosed("health check")
	}
	return d.conn.HealthCheck(ctx)
}

// Close stops every keeper and watch (their channels close), then revokes
// the leases of the registrations still held, best-effort within 2s, so the
// instances disappear at once. Later calls return nil; other methods return
// ErrClosed.
func (d *Discovery) Close() error {
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

// revoke ends a lease best-effort, within closeRevokeTimeout; a lease it
// misses expires by its TTL.
func (d *Discovery) revoke(lease clientv3.LeaseID) {
	cli, err := d.conn.client()
	if err != nil || lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeRevokeTimeout)
	defer cancel()
	if _, err := cli.Revoke(ctx, lease); err != nil && !errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
		d.log.Debug("etcd discovery: revoke", "lease", int64(lease), "error", err)
	}
}

func (d *Discovery) report(ev backends.RegistrationEvent) {
	if d.opts.OnRegistration == nil {
		return
	}
	d.cbMu.Lock()
	defer d.cbMu.Unlock()
	d.opts.OnRegistration(ev)
}

// start runs r's keeper in the background.
func (d *Discovery) start(r *registration) {
	ctx, cancel := context.WithCancel(d.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		r.keep(ctx)
	}()
}

// registration is one instance this Discovery keeps alive. lease and rev are
// written only by establish, which runs either before the keeper starts or
// inside it; stop() makes them safe to read again.
type registration struct {
	d     *Discovery
	svc   backends.ServiceInfo
	key   string
	value []byte
	ttl   int64 // lease TTL, seconds

	lease clientv3.LeaseID
	rev   int64 // revision of our last write of key

	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the keeper and waits for it.
func (r *registration) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// Reasons a held registration ends.
var (
	errKeepAliveEnded = errors.New("etcd: lease keep-alive ended (lease expired or unknown to the server)")
	errKeyDeleted     = errors.New("etcd: registration key deleted")
)

// establish grants a new lease and writes the key under it.
func (r *registration) establish(ctx context.Context) error {
	cli, err := r.d.conn.client()
	if err != nil {
		return err
	}
	octx, cancel := r.d.conn.opContext(ctx)
	defer cancel()
	g, err := cli.Grant(octx, r.ttl)
	if err != nil {
		return err
	}
	put, err := cli.Put(octx, r.key, string(r.value), clientv3.WithLease(g.ID))
	if err != nil {
		r.d.revoke(g.ID)
		return err
	}
	r.lease, r.rev = g.ID, put.Header.Revision
	return nil
}

// keep holds the registration until ctx ends, restoring it whenever it is
// lost.
func (r *registration) keep(ctx context.Context) {
	rehold := backoff{min: r.d.opts.RetryMin, max: r.d.opts.RetryMax}
	for {
		cause := r.hold(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(cause, errKeepAliveEnded) && r.stillHeld(ctx) {
			// The keep-alive stream gave up (e.g. etcd was down for a
			// while) but the lease survived: keep holding, after a pause
			// so that a keep-alive failing at once cannot spin us.
			if !sleepCtx(ctx, rehold.next()) {
				return
			}
			continue
		}
		rehold.reset()
		r.d.log.Info("etcd discovery: registration lost; restoring", "service", r.svc.Name, "id", r.svc.ID, "cause", cause)
		r.d.report(backends.RegistrationEvent{ServiceID: r.svc.ID, ServiceName: r.svc.Name, State: backends.RegistrationLost, Err: cause})
		if !r.restore(ctx) {
			return
		}
		r.d.log.Info("etcd discovery: registration restored", "service", r.svc.Name, "id", r.svc.ID)
		r.d.report(backends.RegistrationEvent{ServiceID: r.svc.ID, ServiceName: r.svc.Name, State: backends.RegistrationRestored})
	}
}

// hold keeps the lease alive and watches the key until either is lost (the
// cause is returned) or ctx ends.
func (r *registration) hold(ctx context.Context) error {
	cli, err := r.d.conn.client()
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	ka, err := cli.KeepAlive(hctx, r.lease)
	if err != nil {
		return fmt.Errorf("%w: %w", errKeepAliveEnded, err)
	}
	lost := make(chan error, 1)
	w := &resumableWatch{
		conn: r.d.conn,
		log:  r.d.log,
		key:  r.key,
		next: r.rev + 1,
		seen: r.rev,
		onEvents: func(_ context.Context, evs []*mvccpb.Event) error {
			for _, ev := range evs {
				switch {
				case ev.Type == mvccpb.Event_DELETE:
					lost <- errKeyDeleted
					return errWatchStopped
				case ev.Kv.Lease != int64(r.lease):
					// Someone registered the same ID: theirs wins until it
					// goes away; fighting over the key would flap forever.
					r.d.log.Warn("etcd discovery: instance key taken over by another lease", "key", r.key)
				}
			}
			return nil
		},
		onResync: func(_ context.Context, kvs []*mvccpb.KeyValue, _ int64) error {
			if len(kvs) == 0 {
				lost <- errKeyDeleted
				return errWatchStopped
			}
			return nil
		},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(hctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return err
		case _, ok := <-ka:
			if !ok {
				return errKeepAliveEnded
			}
		}
	}
}

// stillHeld reports whether etcd still has the lease alive and the key
// attached to it.
func (r *registration) stillHeld(ctx context.Context) bool {
	cli, err := r.d.conn.client()
	if err != nil {
		return false
	}
	octx, cancel := r.d.conn.opContext(ctx)
	defer cancel()
	ttl, err := cli.TimeToLive(octx, r.lease)
	if err != nil || ttl.TTL <= 0 {
		return false
	}
	resp, err := cli.Get(octx, r.key)
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease != int64(r.lease) {
		return false
	}
	r.rev = resp.Header.Revision
	return true
}

// restore re-registers until it succeeds (true) or ctx ends (false).
func (r *registration) restore(ctx context.Context) bool {
	bo := backoff{min: r.d.opts.RetryMin, max: r.d.opts.RetryMax}
	old := r.lease
	for {
		err := r.establish(ctx)
		if err == nil {
			if old != r.lease {
				// The old lease may live on (the key was deleted by hand):
				// it holds nothing of ours any more.
				r.d.revoke(old)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.d.log.Debug("etcd discovery: restore failed; retrying", "id", r.svc.ID, "error", err)
		if !sleepCtx(ctx, bo.next()) {
			return false
		}
	}
}
