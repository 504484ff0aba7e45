package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Register publishes svc under a fresh lease of ttl (0 = the default, 10s;
// rounded up to whole seconds, at least 2s) and keeps it alive until
// Deregister or Close; see the type doc for self-healing. Registering an ID
// this value already holds replaces that registration (new value, new
// lease); if the replacement cannot be written, the old one stays in force.
// Errors: ErrInvalidArgument, ErrUnavailable, ErrClosed, or ctx's error.
func (d *registry) Register(ctx context.Context, svc backends.ServiceInfo, ttl time.Duration) error {
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
func (d *registry) Deregister(ctx context.Context, serviceID string) error {
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

// revoke ends a lease best-effort, within closeRevokeTimeout; a lease it
// misses expires by its TTL.
func (d *registry) revoke(lease clientv3.LeaseID) {
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

func (d *registry) report(ev backends.RegistrationEvent) {
	if d.opts.OnRegistration == nil {
		return
	}
	d.cbMu.Lock()
	defer d.cbMu.Unlock()
	d.opts.OnRegistration(ev)
}

// start runs r's keeper in the background.
func (d *registry) start(r *registration) {
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
	d     *registry
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
