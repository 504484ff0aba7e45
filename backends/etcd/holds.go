package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// holdSet is what a Locker or an Elector shares: the keys it holds (locks,
// leaderships) and its lifecycle. ctx ends on Close: it aborts the waits in
// progress and stops every monitor goroutine, which wg counts.
type holdSet struct {
	what string // "locker" or "elector", as error texts name the owner

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	held   map[*lockHold]struct{}
}

func (s *holdSet) init(what string) {
	s.what = what
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.held = make(map[*lockHold]struct{})
}

func (s *holdSet) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// waitErr maps an error of a waiting call, telling Close apart from the
// caller's ctx.
func (s *holdSet) waitErr(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil && s.ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", op, s.what, backends.ErrClosed)
	}
	return mapCtxErr(ctx, op, err)
}

// hold turns the queue entry e into a held key with its monitor, or
// returns nil when already closed (the caller then gives e up).
func (s *holdSet) hold(conn *Connector, cli *clientv3.Client, e lockEntry, autoRenew bool) *lockHold {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	h := newLockHold(s.ctx, conn, cli, e, autoRenew, &s.wg, func(h *lockHold, state int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.held, h)
		if state == lockLost && !s.closed {
			s.wg.Add(1) // under mu while open: never races shut's Wait
			go func() {
				defer s.wg.Done()
				revokeLost(s.ctx, conn, h.lease(), h.key)
			}()
		}
	})
	s.held[h] = struct{}{}
	return h
}

// shut releases every key still held (best effort, see lockReleaseAll;
// op names the releases), aborts the waits and stops every goroutine.
// Later calls return ErrClosed.
func (s *holdSet) shut(conn *Connector, op string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("etcd: %s: %w", s.what, backends.ErrClosed)
	}
	s.closed = true
	holds := make([]*lockHold, 0, len(s.held))
	for h := range s.held {
		holds = append(holds, h)
	}
	s.mu.Unlock()
	lockReleaseAll(conn, holds, op)
	s.cancel()
	s.wg.Wait()
	return nil
}

// revokeLost revokes the etcd lease of a hold that ended as lost, retrying
// until etcd answers. Losing a hold does not remove its key: when this
// client stopped hearing from etcd (server killed, partition, client
// closed under it), the key and its lease may still be there, and a
// restarted etcd renews every lease to its full TTL — so the lock or
// election would stay blocked for another TTL after the server is back
// although nobody holds it. The first answer settles it: the lease is
// revoked, or etcd no longer knows it.
//
// Attempts go through the connector's current client, so they continue
// across a reconnect (a supervisor that replaced the client); while etcd is
// unreachable each one fails fast (see Connector.opContext) and they are
// spaced by a backoff of 100ms doubling to 1s. The loop ends with ctx (the
// Locker's or Elector's Close): after Close nothing is revoked any more,
// which is what a crashed process looks like, and the lease then expires
// by its TTL.
func revokeLost(ctx context.Context, conn *Connector, id clientv3.LeaseID, key string) {
	const maxBackoff = time.Second
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if cli, err := conn.client(); err == nil {
			rctx, cancel := conn.opContext(ctx)
			_, err = cli.Revoke(rctx, id)
			cancel()
			if err == nil || errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
				conn.logger.Debug("etcd: lease of a lost lock or leadership revoked", "key", key, "attempts", attempt)
				return
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
