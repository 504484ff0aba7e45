package redis

import (
	"context"
	_ "embed" // Lua script
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

var (
	//go:embed lock_adopt.lua
	lockAdoptSrc    string
	lockAdoptScript = goredis.NewScript(lockAdoptSrc)
)

var (
	_ backends.Adopter  = (*lockStore)(nil)
	_ backends.Detacher = (*lease)(nil)
)

// Record implements backends.Detacher: the handle is the holder value
// stored under the lock (a fresh nonce per grant, then the owner).
func (ls *lease) Record() backends.LeaseRecord {
	return backends.LeaseRecord{Name: ls.name, Owner: ls.owner, Token: ls.token, TTL: ls.TTL(), Handle: ls.holder}
}

// Detach implements backends.Detacher: the lease ends here without a
// server call; the key keeps its holder and expiry.
func (ls *lease) Detach() {
	ls.mu.Lock()
	ls.detached = true
	ls.mu.Unlock()
	ls.end()
}

// Adopt implements backends.Adopter with one read-only script: the lock's
// key must still hold the record's holder value; its remaining PTTL becomes
// the adopted lease's local expiry.
func (l *lockStore) Adopt(ctx context.Context, rec backends.LeaseRecord, autoRenew bool) (backends.Lease, error) {
	op := fmt.Sprintf("redis: lock %q adopt", rec.Name)
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !strings.HasSuffix(rec.Handle, "|"+rec.Owner) {
		// Not what this owner could have been granted.
		return nil, fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	if l.leases.isClosed() {
		return nil, lockClosedErr("adopt")
	}
	cl, err := l.conn.client()
	if err != nil {
		return nil, err
	}
	ownerKey, fenceKey, channel := l.lockKeys(rec.Name)
	start := time.Now()
	pttl, err := lockAdoptScript.Run(ctx, cl, []string{ownerKey, fenceKey}, rec.Handle, strconv.FormatUint(rec.Token, 10)).Int64()
	if err != nil {
		return nil, mapErr(op, err)
	}
	if pttl == -3 || pttl == -2 || pttl == 0 {
		return nil, fmt.Errorf("%s: %w", op, backends.ErrNotHeld)
	}
	left := time.Duration(pttl) * time.Millisecond
	if pttl < 0 { // no expiry: never set by Baton, but keep the record's TTL
		left = rec.TTL
	}
	ls := &lease{
		l: l, name: rec.Name, owner: rec.Owner, holder: rec.Handle,
		ownerKey: ownerKey, channel: channel,
		token: rec.Token, ttl: pxTTL(rec.TTL),
		expiry: expiry{done: make(chan struct{})},
	}
	var renew func()
	if autoRenew {
		renew = ls.autoRenew
	}
	if !l.leases.add(ls, left, start, renew) {
		return nil, lockClosedErr("adopt")
	}
	return ls, nil
}
