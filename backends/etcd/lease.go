package etcd

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease timing rules shared by the cache, locks and elections.
const (
	// minLeaseTTL is the shortest lease etcd grants with its default
	// heartbeat/election settings (it silently raises shorter requests).
	minLeaseTTL = 2 * time.Second
	// bucketWidth is the granularity of cache expiry buckets: every entry
	// whose deadline falls into the same wall-clock second shares a lease.
	bucketWidth = time.Second
)

// leaseSeconds is the etcd lease TTL for a requested duration: rounded up to
// whole seconds, at least minLeaseTTL.
func leaseSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < int64(minLeaseTTL/time.Second) {
		s = int64(minLeaseTTL / time.Second)
	}
	return s
}

// bucketOf rounds a deadline up to the end of its bucket.
func bucketOf(deadline time.Time) time.Time {
	b := deadline.Truncate(bucketWidth)
	if b.Before(deadline) {
		b = b.Add(bucketWidth)
	}
	return b
}

// bucketLease is one shared lease (or a grant in flight).
type bucketLease struct {
	ready   chan struct{} // closed once the grant finished
	id      clientv3.LeaseID
	expires time.Time // earliest moment etcd may end the lease
	err     error
}

// leaseBuckets hands out leases shared per expiry bucket (see the package doc
// for the rule). It is owned by a Connector, so every cache on that connector
// shares it. It runs no goroutines: leases are granted on demand, never kept
// alive, and simply forgotten once expired.
type leaseBuckets struct {
	now func() time.Time

	mu        sync.Mutex
	byBucket  map[int64]*bucketLease // key: bucket end, Unix seconds
	lastSweep time.Time
}

func newLeaseBuckets() *leaseBuckets {
	return &leaseBuckets{now: time.Now, byBucket: make(map[int64]*bucketLease)}
}

// forDeadline returns a lease that lives at least until deadline, granting
// one if the deadline's bucket has no live lease yet. Concurrent callers for
// the same bucket share one grant. grantCtx bounds the grant round trip.
func (m *leaseBuckets) forDeadline(ctx context.Context, cli *clientv3.Client, deadline time.Time,
	grantCtx func(context.Context) (context.Context, context.CancelFunc)) (clientv3.LeaseID, error) {
	end := bucketOf(deadline)
	key := end.Unix()
	for {
		now := m.now()
		m.mu.Lock()
		m.sweepLocked(now)
		e, ok := m.byBucket[key]
		if !ok {
			e = &bucketLease{ready: make(chan struct{})}
			m.byBucket[key] = e
			m.mu.Unlock()
			m.grant(ctx, cli, e, key, end, grantCtx)
			return e.id, e.err
		}
		m.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if e.err != nil {
			return 0, e.err
		}
		if e.expires.After(now) {
			return e.id, nil
		}
		// Expired between the sweep and now: drop it and grant afresh.
		m.forget(e.id)
	}
}

func (m *leaseBuckets) grant(ctx context.Context, cli *clientv3.Client, e *bucketLease, key int64, end time.Time,
	grantCtx func(context.Context) (context.Context, context.CancelFunc)) {
	start := m.now()
	gctx, cancel := grantCtx(ctx)
	resp, err := cli.Grant(gctx, leaseSeconds(end.Sub(start)))
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		e.err = err
		delete(m.byBucket, key) // let the next caller try again
	} else {
		e.id = resp.ID
		// etcd starts the lease no earlier than our request left.
		e.expires = start.Add(time.Duration(resp.TTL) * time.Second)
	}
	close(e.ready)
}

// forget drops a lease that etcd no longer knows (revoked, expired early,
// data wiped), so the next write grants a new one.
func (m *leaseBuckets) forget(id clientv3.LeaseID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.byBucket {
		select {
		case <-e.ready:
			if e.err == nil && e.id == id {
				delete(m.byBucket, k)
			}
		default:
		}
	}
}

// sweepLocked removes expired leases, at most once per bucket width.
func (m *leaseBuckets) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < bucketWidth {
		return
	}
	m.lastSweep = now
	for k, e := range m.byBucket {
		select {
		case <-e.ready:
			if !e.expires.After(now) {
				delete(m.byBucket, k)
			}
		default:
		}
	}
}

// live returns how many granted leases the manager still tracks.
func (m *leaseBuckets) live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.byBucket {
		select {
		case <-e.ready:
			if e.err == nil {
				n++
			}
		default:
		}
	}
	return n
}
