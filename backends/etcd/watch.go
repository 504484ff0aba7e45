package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// Bounds of the backoff between attempts to re-open a broken watch stream.
const (
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = time.Second
)

// watchGap says that the events between the resume point and now cannot be
// delivered one by one: history was compacted, or the server is not the one
// (or no longer has the data) we were following. The handler must re-list.
type watchGap struct {
	reason string
	// suspect gaps rest on a revision that looked too low, which a lagging
	// follower can also produce; a linearizable read confirms them first.
	suspect bool
}

func (g *watchGap) Error() string { return "etcd: watch gap: " + g.reason }

// resumableWatch follows one key or key range across reconnects, server
// restarts, compaction and data loss, and never skips an event silently.
//
// It speaks etcd's Watch gRPC stream directly instead of using
// clientv3.Watcher: clientv3 re-creates broken streams on its own and
// resumes them from its last revision without telling the caller, so a
// watcher could not notice that the server came back with wiped data (its
// revisions restart at 1, and a watch "from revision R+1" then silently skips
// everything the new server does below R+1). Owning the stream, every
// (re)creation is a point where we check the server's revision and cluster
// ID against what we have seen.
//
// Fields are owned by the goroutine calling run.
type resumableWatch struct {
	conn     *Connector
	log      *slog.Logger
	key, end string // watched key, and range end ("" = the key alone)
	prevKV   bool

	// next is the first revision not yet handed to onEvents: the resume point.
	next int64
	// seen is the highest header revision observed from the cluster. A
	// (re)created watch reporting a lower current revision means the server
	// lost its data (or we hit a lagging member; resync confirms which).
	seen int64
	// cluster is the cluster ID observed, 0 until known.
	cluster uint64

	// onEvents gets the events of one response, in revision order. A
	// non-nil error stops the watch.
	onEvents func(ctx context.Context, evs []*mvccpb.Event) error
	// onResync gets a fresh listing of the range at revision rev after a gap
	// and must emit the difference to what it had. A non-nil error stops
	// the watch.
	onResync func(ctx context.Context, kvs []*mvccpb.KeyValue, rev int64) error
}

// errWatchStopped is returned by handlers that want the watch to end.
var errWatchStopped = errors.New("etcd: watch stopped")

// run follows the range until ctx ends or a handler returns an error.
func (w *resumableWatch) run(ctx context.Context) {
	bo := backoff{min: watchRetryMin, max: watchRetryMax}
	gapAtCreate := false
	for ctx.Err() == nil {
		created, err := w.stream(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		var gap *watchGap
		switch {
		case errors.As(err, &gap):
			w.log.Debug("etcd watch gap", "key", w.key, "reason", gap.reason, "resume", w.next, "seen", w.seen)
			// A gap right at creation twice in a row (say, two clusters
			// behind one address) must not turn into a tight loop of lists.
			if !created && gapAtCreate && !sleepCtx(ctx, bo.next()) {
				return
			}
			gapAtCreate = !created
			if err := w.resync(ctx, gap, &bo); err != nil {
				return
			}
			continue
		case errors.Is(err, errHandler):
			return
		}
		gapAtCreate = false
		w.log.Debug("etcd watch interrupted; resuming", "key", w.key, "resume", w.next, "error", err)
		if !sleepCtx(ctx, bo.next()) {
			return
		}
	}
}

// errHandler marks an error returned by onEvents/onResync.
var errHandler = errors.New("etcd: watch handler stopped")

// stream runs one watch stream from w.next until it breaks; created says
// whether the server accepted the watch.
func (w *resumableWatch) stream(ctx context.Context, bo *backoff) (created bool, err error) {
	cli, err := w.conn.client()
	if err != nil {
		return false, err
	}
	// WithRequireLeader: a member cut off from its leader ends the stream
	// instead of serving a watch that no longer advances.
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wc, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(sctx, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return false, err
	}
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key:           []byte(w.key),
		RangeEnd:      []byte(w.end),
		StartRevision: w.next,
		PrevKv:        w.prevKV,
	}}}
	if err := wc.Send(req); err != nil {
		return false, err
	}
	for {
		resp, err := wc.Recv()
		if err != nil {
			return created, err
		}
		if resp.CompactRevision > 0 {
			return created, &watchGap{reason: fmt.Sprintf("revision %d compacted (compact revision %d)", w.next, resp.CompactRevision)}
		}
		if resp.Canceled {
			return created, fmt.Errorf("etcd: watch canceled by the server: %s", resp.CancelReason)
		}
		if h := resp.GetHeader(); h != nil {
			if w.cluster != 0 && h.ClusterId != 0 && h.ClusterId != w.cluster {
				return created, &watchGap{reason: fmt.Sprintf("cluster id changed from %x to %x", w.cluster, h.ClusterId)}
			}
			if resp.Created && h.Revision < w.seen {
				return created, &watchGap{
					reason:  fmt.Sprintf("server revision %d is below the seen revision %d", h.Revision, w.seen),
					suspect: true,
				}
			}
			if h.ClusterId != 0 {
				w.cluster = h.ClusterId
			}
		}
		if resp.Created {
			created = true
			bo.reset()
		}
		if !created {
			continue
		}
		if n := len(resp.Events); n > 0 {
			if err := w.onEvents(ctx, resp.Events); err != nil {
				return created, fmt.Errorf("%w: %w", errHandler, err)
			}
			w.next = resp.Events[n-1].Kv.ModRevision + 1
		}
		if h := resp.GetHeader(); h != nil && h.Revision > w.seen {
			w.seen = h.Revision
		}
	}
}

// resync re-lists the range after a gap, retrying until it succeeds or ctx
// ends, and continues after the listing's revision.
func (w *resumableWatch) resync(ctx context.Context, gap *watchGap, bo *backoff) error {
	opts := []clientv3.OpOption{}
	if w.end != "" {
		opts = append(opts, clientv3.WithRange(w.end))
	}
	for {
		cli, err := w.conn.client()
		if err == nil {
			octx, cancel := w.conn.opContext(ctx)
			var resp *clientv3.GetResponse
			resp, err = cli.Get(octx, w.key, opts...)
			cancel()
			if err == nil {
				h := resp.Header
				sameCluster := w.cluster == 0 || h.ClusterId == w.cluster
				if gap.suspect && sameCluster && h.Revision >= w.seen {
					// A lagging member, not lost data: resume as before,
					// after a pause so that a member that stays behind
					// does not spin us.
					w.log.Debug("etcd watch: revision check passed on a linearizable read", "key", w.key, "revision", h.Revision)
					if !sleepCtx(ctx, bo.next()) {
						return ctx.Err()
					}
					return nil
				}
				if err := w.onResync(ctx, resp.Kvs, h.Revision); err != nil {
					return err
				}
				w.next, w.seen, w.cluster = h.Revision+1, h.Revision, h.ClusterId
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.log.Debug("etcd watch resync failed; retrying", "key", w.key, "error", err)
		if !sleepCtx(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

// backoff is a capped exponential backoff with "equal jitter": each wait is
// uniformly random in [d/2, d] for the current step d, so that many clients
// retrying after one outage spread out.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(b.cur*2, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// mergeDone returns a context that ends with ctx or with stop, whichever is
// first: component calls abort when the component is closed.
func mergeDone(ctx context.Context, stop context.Context) (context.Context, context.CancelFunc) {
	mctx, cancel := context.WithCancel(ctx)
	unregister := context.AfterFunc(stop, cancel)
	return mctx, func() {
		unregister()
		cancel()
	}
}
