package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// Register publishes svc and keeps it alive every ttl/3 until Deregister or
// Close. A registration found missing (server restarted empty, key deleted)
// or unreachable is reported as RegistrationLost and restored with jittered
// exponential backoff, forever, then reported as RegistrationRestored.
// Registering an ID again updates the instance (moving it to another service
// name removes it from the old one first). The write uses ctx and its
// failure is returned: a failed first Register keeps nothing, a failed
// update keeps the previous registration alive.
func (d *registry) Register(ctx context.Context, svc backends.ServiceInfo, ttl time.Duration) error {
	const op = "redis discovery: register"
	if err := svc.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateTTL("ttl", ttl); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if ttl == 0 {
		ttl = backends.DefaultRegistrationTTL
	}
	if ttl < discMinTTL {
		return fmt.Errorf("%s: %w", op, backends.Invalid("ttl", ttl, "must be at least "+discMinTTL.String()))
	}
	raw, err := json.Marshal(svc)
	if err != nil {
		return fmt.Errorf("%s: encode instance: %w", op, err)
	}
	info := string(raw)
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return d.errClosed(op)
		}
		r := d.regs[svc.ID]
		if r == nil {
			return d.registerNew(ctx, svc, info, ttl) // unlocks d.mu
		}
		d.mu.Unlock()

		r.mu.Lock()
		if r.stopped { // removed meanwhile: start over
			r.mu.Unlock()
			continue
		}
		if r.name != svc.Name {
			r.mu.Unlock()
			if err := d.Deregister(ctx, svc.ID); err != nil && !errors.Is(err, backends.ErrNotFound) {
				return fmt.Errorf("%s: move %q from service %q: %w", op, svc.ID, r.name, err)
			}
			continue
		}
		err := d.write(ctx, op, discRegisterScript, svc.Name, svc.ID, info, ttl)
		if err == nil {
			r.svc, r.info, r.ttl = svc, info, ttl
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
		return err
	}
}

// registerNew is called with d.mu held and releases it.
func (d *registry) registerNew(ctx context.Context, svc backends.ServiceInfo, info string, ttl time.Duration) error {
	const op = "redis discovery: register"
	r := &discReg{
		id:   svc.ID,
		name: svc.Name,
		svc:  svc,
		info: info,
		ttl:  ttl,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(d.ctx)
	// Locked before it becomes visible, so concurrent callers for this ID
	// wait for the first write.
	r.mu.Lock()
	d.regs[svc.ID] = r
	d.useService(svc.Name)
	d.wg.Add(1) // for the keep-alive goroutine; added under d.mu so Close's Wait sees it
	d.mu.Unlock()

	if err := d.write(ctx, op, discRegisterScript, svc.Name, svc.ID, info, ttl); err != nil {
		r.stopped = true
		r.mu.Unlock()
		d.mu.Lock()
		if d.regs[svc.ID] == r {
			delete(d.regs, svc.ID)
			d.releaseService(svc.Name)
		}
		d.mu.Unlock()
		r.cancel()
		close(r.done)
		d.wg.Done()
		return err
	}
	go d.keepAlive(r, ttl)
	r.mu.Unlock()
	return nil
}

// write runs a register-style script (id, info, ttl) with the caller's ctx.
func (d *registry) write(ctx context.Context, op string, s *goredis.Script, service, id, info string, ttl time.Duration) error {
	cl, err := d.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = d.keys(service).run(ctx, cl, s, id, info, ttl.Milliseconds()).Err()
	return mapErr(op, err)
}

func discKeepAliveInterval(ttl time.Duration) time.Duration {
	return max(ttl/3, time.Millisecond)
}

// discCallTimeout bounds one keep-alive: long enough for a slow server,
// short enough to retry well before the TTL runs out.
func discCallTimeout(ttl time.Duration) time.Duration {
	return min(max(ttl/3, 500*time.Millisecond), 5*time.Second)
}

// keepAlive refreshes r every ttl/3 and restores it when it was lost.
func (d *registry) keepAlive(r *discReg, ttl time.Duration) {
	defer d.wg.Done()
	defer close(r.done)
	lost := false
	attempt := 0
	timer := time.NewTimer(discKeepAliveInterval(ttl))
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
			if !lost {
				r.mu.Lock()
				ttl = r.ttl
				r.mu.Unlock()
				timer.Reset(discKeepAliveInterval(ttl))
			}
			continue
		case <-timer.C:
		}
		alive, newTTL, err := d.refresh(r)
		switch {
		case errors.Is(err, errDiscStopped) || r.ctx.Err() != nil:
			return
		case err != nil:
			if !lost {
				lost = true
				d.report(r, backends.RegistrationLost, err)
			}
			d.logger.Debug("keep-alive failed", "service", r.name, "id", r.id, "attempt", attempt, "err", err)
			timer.Reset(discBackoff(d.opts.RetryMin, d.opts.RetryMax, attempt))
			attempt++
			continue
		case !alive:
			if !lost {
				d.report(r, backends.RegistrationLost, fmt.Errorf("redis discovery: instance %q of %q was missing on the server: %w", r.id, r.name, backends.ErrNotFound))
			}
			lost = false
			d.report(r, backends.RegistrationRestored, nil)
		case lost:
			lost = false
			d.report(r, backends.RegistrationRestored, nil)
		}
		attempt = 0
		ttl = newTTL
		timer.Reset(discKeepAliveInterval(ttl))
	}
}

// refresh runs one keep-alive under r.mu. alive is false when the instance
// had vanished and has just been registered again.
func (d *registry) refresh(r *discReg) (alive bool, ttl time.Duration, err error) {
	const op = "redis discovery: keep-alive"
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false, r.ttl, errDiscStopped
	}
	cl, err := d.conn.client()
	if err != nil {
		return false, r.ttl, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, discCallTimeout(r.ttl))
	defer cancel()
	n, err := d.keys(r.svc.Name).run(ctx, cl, discKeepAliveScript, r.svc.ID, r.info, r.ttl.Milliseconds()).Int()
	if err != nil {
		return false, r.ttl, mapErr(op, err)
	}
	return n == 1, r.ttl, nil
}

// report queues a registration event for OnRegistration.
func (d *registry) report(r *discReg, state backends.RegistrationState, cause error) {
	d.logger.Debug("registration "+state.String(), "service", r.name, "id", r.id, "err", cause)
	if d.opts.OnRegistration == nil {
		return
	}
	d.cbMu.Lock()
	d.cbQueue = append(d.cbQueue, backends.RegistrationEvent{
		ServiceID:   r.id,
		ServiceName: r.name,
		State:       state,
		Err:         cause,
	})
	d.cbMu.Unlock()
	select {
	case d.cbWake <- struct{}{}:
	default:
	}
}

// dispatchLoop calls OnRegistration in order, one event at a time, until
// Close; events still queued then are dropped.
func (d *registry) dispatchLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.cbWake:
		}
		for d.ctx.Err() == nil {
			d.cbMu.Lock()
			if len(d.cbQueue) == 0 {
				d.cbMu.Unlock()
				break
			}
			ev := d.cbQueue[0]
			d.cbQueue = d.cbQueue[1:]
			d.cbMu.Unlock()
			d.opts.OnRegistration(ev)
		}
	}
}

// discBackoff is capped exponential backoff with jitter: a random duration
// in [d/2, d] where d = min(lo·2^attempt, hi).
func discBackoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 32 {
		if x := lo << attempt; x > 0 && x < hi {
			d = x
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Deregister stops the keep-alive of serviceID and removes the instance at
// once (watchers see a removal). ErrNotFound when this Discovery holds no
// registration with that ID. The local registration is dropped even when
// the server cannot be reached; the error is returned and the instance then
// expires with its TTL.
func (d *registry) Deregister(ctx context.Context, serviceID string) error {
	const op = "redis discovery: deregister"
	if err := backends.ValidateName("service id", serviceID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return d.errClosed(op)
	}
	r := d.regs[serviceID]
	if r == nil {
		d.mu.Unlock()
		return fmt.Errorf("%s: instance %q: %w", op, serviceID, backends.ErrNotFound)
	}
	delete(d.regs, serviceID)
	d.releaseService(r.name)
	d.mu.Unlock()

	r.mu.Lock()
	wasStopped := r.stopped
	r.stopped = true
	svc, info := r.svc, r.info
	r.mu.Unlock()
	r.cancel()
	<-r.done
	if wasStopped { // its first write failed: it never existed
		return fmt.Errorf("%s: instance %q: %w", op, serviceID, backends.ErrNotFound)
	}
	return d.remove(ctx, op, svc, info)
}

func (d *registry) remove(ctx context.Context, op string, svc backends.ServiceInfo, info string) error {
	cl, err := d.conn.client()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return mapErr(op, d.keys(svc.Name).run(ctx, cl, discDeregisterScript, svc.ID, info).Err())
}
