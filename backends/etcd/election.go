package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/baton-go/baton/backends"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// electionStore is the Elector NewElector returns.
type electionStore struct {
	conn    *Connector
	ns      backends.Namespace
	ttlSecs int64
	holdSet
}

var _ backends.Elector = (*electionStore)(nil)

// NewElector returns an Elector for opts.Namespace on conn. opts.TTL
// defaults to 10s and is rounded up to whole seconds, minimum 2s. Each
// Campaign runs on a lease of its own, kept alive in the background; the
// candidate whose key has the lowest create revision leads, and that
// revision is the epoch. Close resigns every leadership it holds and stops
// Observe goroutines.
func NewElector(conn *Connector, opts backends.ElectorOptions) (backends.Elector, error) {
	s, err := newElectionStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newElectionStore is NewElector with the concrete type, for this package's tests.
func newElectionStore(conn *Connector, opts backends.ElectorOptions) (*electionStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "<nil>", "must not be nil")
	}
	ns := opts.Namespace.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	if err := backends.ValidateTTL("ttl", opts.TTL); err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = backends.DefaultElectionTTL
	}
	e := &electionStore{conn: conn, ns: ns, ttlSecs: leaseSeconds(opts.TTL)}
	e.holdSet.init("elector")
	return e, nil
}

func (e *electionStore) prefix(election string) string {
	return e.ns.Prefix(backends.ComponentElection, election)
}

func electValidate(election string) error {
	return backends.ValidateName("election", election)
}

// Campaign blocks until this candidate leads election or ctx ends; then its
// key and lease are removed and the wrapped ctx.Err() is returned.
// Candidates are served in arrival order.
func (e *electionStore) Campaign(ctx context.Context, election, value string) (backends.Leadership, error) {
	const op = "etcd: campaign"
	if err := electValidate(election); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := backends.ValidateValue([]byte(value), 0); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if e.isClosed() {
		return nil, fmt.Errorf("%s: elector: %w", op, backends.ErrClosed)
	}
	cli, err := e.conn.client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	stop := context.AfterFunc(e.ctx, wcancel)
	defer stop()

	pfx := e.prefix(election)
	en, err := lockEnqueue(wctx, e.conn, cli, pfx, value, e.ttlSecs)
	if err != nil {
		return nil, e.waitErr(ctx, op, err)
	}
	if !en.first {
		if err := lockWaitTurn(wctx, e.conn, cli, pfx, &en); err != nil {
			lockRevoke(ctx, e.conn, cli, en.id)
			return nil, e.waitErr(ctx, op, err)
		}
	}
	if en.waited {
		// The wait kept the session alive, but not from a moment known
		// here: renew it once, so that its local deadline (see
		// lockHold.renew) counts from this request.
		start := time.Now()
		octx, cancel := e.conn.opContext(wctx)
		resp, err := cli.KeepAliveOnce(octx, en.id)
		cancel()
		if err != nil {
			lockRevoke(ctx, e.conn, cli, en.id)
			if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
				err = errLockLeaseLost
			}
			return nil, e.waitErr(ctx, op, err)
		}
		en.granted, en.ttl = start, time.Duration(resp.TTL)*time.Second
	}
	// A leader's session is always kept alive: leadership ends only by
	// Resign, Close or losing the session.
	h := e.holdSet.hold(e.conn, cli, en, true)
	if h == nil {
		lockRevoke(ctx, e.conn, cli, en.id)
		return nil, fmt.Errorf("%s: elector: %w", op, backends.ErrClosed)
	}
	return &electLeadership{h: h, election: election, value: value}, nil
}

// Leader returns the current leader, or ErrNotFound when there is none.
func (e *electionStore) Leader(ctx context.Context, election string) (backends.LeaderInfo, error) {
	const op = "etcd: leader"
	if err := electValidate(election); err != nil {
		return backends.LeaderInfo{}, fmt.Errorf("%s: %w", op, err)
	}
	cli, err := e.conn.client()
	if err != nil {
		return backends.LeaderInfo{}, fmt.Errorf("%s: %w", op, err)
	}
	info, _, err := e.electLeader(ctx, cli, election)
	if err != nil {
		return backends.LeaderInfo{}, mapCtxErr(ctx, op, err)
	}
	if info.Epoch == 0 {
		return backends.LeaderInfo{}, fmt.Errorf("%s %q: %w", op, election, backends.ErrNotFound)
	}
	return info, nil
}

// electLeader reads the leader (Epoch 0 when none) and the revision read at.
func (e *electionStore) electLeader(ctx context.Context, cli *clientv3.Client, election string) (backends.LeaderInfo, int64, error) {
	octx, cancel := e.conn.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(octx, e.prefix(election), clientv3.WithFirstCreate()...)
	if err != nil {
		return backends.LeaderInfo{}, 0, err
	}
	info := backends.LeaderInfo{Election: election}
	if len(resp.Kvs) > 0 {
		info.Value = string(resp.Kvs[0].Value)
		info.Epoch = uint64(resp.Kvs[0].CreateRevision)
	}
	return info, resp.Header.Revision, nil
}

// Observe sends the current leader (if any), then every change, until ctx
// ends or the Elector is closed; the channel is then closed. "No leader" is
// sent as LeaderInfo{Election: election}. Connection trouble does not end
// the observation: it retries with jittered backoff and resumes from where
// it was, sending only what changed meanwhile.
func (e *electionStore) Observe(ctx context.Context, election string) (<-chan backends.LeaderInfo, error) {
	const op = "etcd: observe"
	if err := electValidate(election); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("%s: elector: %w", op, backends.ErrClosed)
	}
	if _, err := e.conn.client(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ch := make(chan backends.LeaderInfo)
	octx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.ctx, cancel)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(ch)
		defer stop()
		defer cancel()
		e.electObserve(octx, election, ch)
	}()
	return ch, nil
}

func (e *electionStore) electObserve(ctx context.Context, election string, ch chan<- backends.LeaderInfo) {
	last := backends.LeaderInfo{Election: election} // "no leader": not sent first
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		cli, err := e.conn.client()
		var (
			info backends.LeaderInfo
			rev  int64
		)
		if err == nil {
			info, rev, err = e.electLeader(ctx, cli, election)
		}
		if err != nil {
			if !electSleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if info != last {
			select {
			case ch <- info:
				last = info
			case <-ctx.Done():
				return
			}
		}
		// Any change under the prefix may change the leader: wait for
		// one, then read the leader again.
		wctx, wcancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, e.prefix(election), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		select {
		case <-ctx.Done():
		case <-wch:
		}
		wcancel()
	}
}

// electSleep waits d (with jitter) or until ctx ends; false when ctx ended.
func electSleep(ctx context.Context, d time.Duration) bool {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Close resigns every leadership still held (best effort, bounded by the
// connector's RequestTimeout each), aborts waiting Campaigns and ends every
// Observe. Later calls return ErrClosed.
func (e *electionStore) Close() error {
	return e.shut(e.conn, "etcd: elector close")
}

// electLeadership is held leadership: backends.Leadership.
type electLeadership struct {
	h        *lockHold
	election string
	value    string
}

var _ backends.Leadership = (*electLeadership)(nil)

func (l *electLeadership) Election() string { return l.election }
func (l *electLeadership) Value() string    { return l.value }

// Epoch is the create revision of the leader key.
func (l *electLeadership) Epoch() uint64 { return uint64(l.h.rev) }

// Resign deletes the leader key if it is still ours and ends the session,
// so the next candidate takes over at once; ErrNotHeld when leadership was
// already lost.
func (l *electLeadership) Resign(ctx context.Context) error {
	return l.h.release(ctx, "etcd: resign")
}

// Done closes on Resign or when the session ends (lease lost, connector
// disconnected).
func (l *electLeadership) Done() <-chan struct{} { return l.h.done }
