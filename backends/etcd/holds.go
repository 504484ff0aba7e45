package etcd

import (
	"context"
	"fmt"
	"sync"

	"github.com/baton-go/baton/backends"
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
	h := newLockHold(s.ctx, conn, cli, e, autoRenew, &s.wg, func(h *lockHold) {
		s.mu.Lock()
		delete(s.held, h)
		s.mu.Unlock()
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
