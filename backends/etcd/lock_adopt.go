package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backends"
)

var (
	_ backends.Adopter  = (*lockStore)(nil)
	_ backends.Detacher = (*lockLease)(nil)
)

// Record implements backends.Detacher: the handle is the lock key's last
// segment (the contender key under the lock's prefix).
func (l *lockLease) Record() backends.LeaseRecord {
	pfx := l.l.ns.Prefix(backends.ComponentLock, l.name)
	return backends.LeaseRecord{
		Name: l.name, Owner: l.owner, Token: l.Token(), TTL: l.TTL(),
		Handle: strings.TrimPrefix(l.h.key, pfx),
	}
}

// Detach implements backends.Detacher: the monitor (and any keep-alive)
// stops and the hold ends here; the key and its etcd lease stay.
func (l *lockLease) Detach() {
	l.h.opMu.Lock()
	defer l.h.opMu.Unlock()
	l.h.stopMonitor()
	l.h.end(lockReleased)
}

// Adopt implements backends.Adopter with two reads: the record's key must
// exist with the record's create revision (the token) and owner, and its
// etcd lease must still be alive. The adopted hold watches the key from
// there on, as a granted one does; the lease's TTL is not restarted.
func (l *lockStore) Adopt(ctx context.Context, rec backends.LeaseRecord, autoRenew bool) (backends.Lease, error) {
	op := fmt.Sprintf("etcd: lock %q adopt", rec.Name)
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if l.isClosed() {
		return nil, fmt.Errorf("%s: locker: %w", op, backends.ErrClosed)
	}
	cli, err := l.conn.client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	key := l.ns.Prefix(backends.ComponentLock, rec.Name) + rec.Handle
	notHeld := fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	start := time.Now()
	octx, cancel := l.conn.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(octx, key)
	if err != nil {
		return nil, mapCtxErr(ctx, op, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notHeld
	}
	kv := resp.Kvs[0]
	if uint64(kv.CreateRevision) != rec.Token || string(kv.Value) != rec.Owner || kv.Lease == 0 {
		return nil, notHeld
	}
	id := clientv3.LeaseID(kv.Lease)
	ttl, err := cli.TimeToLive(octx, id)
	if err != nil {
		if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
			return nil, notHeld
		}
		return nil, mapCtxErr(ctx, op, err)
	}
	if ttl.TTL <= 0 {
		return nil, notHeld
	}
	granted := time.Duration(ttl.GrantedTTL) * time.Second
	e := lockEntry{
		key: key, rev: kv.CreateRevision, id: id, ttl: granted,
		granted: start.Add(-(granted - time.Duration(ttl.TTL)*time.Second)),
	}
	h := l.holdSet.hold(l.conn, cli, e, autoRenew)
	if h == nil {
		return nil, fmt.Errorf("%s: locker: %w", op, backends.ErrClosed)
	}
	return &lockLease{l: l, h: h, name: rec.Name, owner: rec.Owner}, nil
}
