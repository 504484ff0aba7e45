package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-go/baton/internal/nodeaccess"
	"github.com/baton-go/baton/internal/protoconv"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// ElectionClient is a backends.Elector served by the node's election actor.
//
// Leaderships stay in the actor; their loss reaches the client as a
// LeadershipLost message. Observe subscribes the client's inbox to the
// actor's shared observation of the election; every event is acknowledged
// once it has been handed to the caller's channel (the actor's flow
// control), a Resync makes the client read the leader again and send it if
// it changed, and the channel closes when ctx ends (or the actor ends the
// subscription for good). Close resigns every leadership still held, ends
// every observation and removes the inbox.
//
// A Resign that returns an error other than ErrNotHeld may be called
// again; if it is not, the actor goes on resigning in the background until
// the backend answers, and the leadership's Done closes then.
type ElectionClient struct {
	base clientBase[*clientLeadership]
	opts nodeaccess.ClientOptions

	life context.Context // ends on Close: stops the observers
	kill context.CancelFunc
	wg   sync.WaitGroup

	observers map[string]*observer // subscription id → observer; guarded by base.mu
}

var (
	_ backends.Elector    = (*ElectionClient)(nil)
	_ backends.Leadership = (*clientLeadership)(nil)
)

// newElectionClient returns a client of the election actor at pid.
func newElectionClient(root *actor.RootContext, pid *actor.PID, opts nodeaccess.ClientOptions) *ElectionClient {
	c := &ElectionClient{opts: withClientDefaults(opts), observers: map[string]*observer{}}
	c.life, c.kill = context.WithCancel(context.Background())
	c.base.init(root, pid, "election-client", c.opts.CleanupTimeout, c.opts.Logger, c.onEvent,
		func(ctx context.Context, requestID string) error {
			_, err := actors.Request[*electionv1.CancelResponse](ctx, root, pid, &electionv1.CancelRequest{RequestId: requestID})
			return err
		})
	return c
}

// Campaign waits until this candidate leads election or ctx ends. When ctx
// ends first, Campaign returns the wrapped ctx.Err() at once and the client
// withdraws the campaign in the background with a CancelRequest (bounded by
// CleanupTimeout; Close waits for it): a candidate that gave up does not
// stay leader — a leadership granted meanwhile is resigned.
func (c *ElectionClient) Campaign(ctx context.Context, election, value string) (backends.Leadership, error) {
	const op = "runtime: campaign"
	if err := c.base.usable(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, election, err)
	}
	req := &electionv1.CampaignRequest{
		Election: election, Value: value, RequestId: newRequestID(),
		Subscriber: actors.SubscriberOf(c.base.inbox.pid),
	}
	resp, err := grantRequest[*electionv1.CampaignResponse](ctx, c.base.root, c.base.pid, req, true, func(t *durationpb.Duration) { req.Timeout = t })
	if err != nil {
		return nil, c.base.withdraw(ctx, op, election, req.RequestId, resp == nil, err, nil)
	}
	m := resp.GetLeadership()
	l := &clientLeadership{
		c: c, election: m.GetElection(), value: m.GetValue(), epoch: m.GetEpoch(),
		id: m.GetLeadershipId(), grantDone: grantDone{done: make(chan struct{})},
	}
	if !c.base.keep(l) {
		c.resign(l)
		return nil, fmt.Errorf("%s %q: client: %w", op, election, backends.ErrClosed)
	}
	return l, nil
}

// Leader returns the current leader, or ErrNotFound when there is none.
func (c *ElectionClient) Leader(ctx context.Context, election string) (backends.LeaderInfo, error) {
	if err := c.base.usable(); err != nil {
		return backends.LeaderInfo{}, fmt.Errorf("runtime: leader %q: %w", election, err)
	}
	resp, err := actors.Request[*electionv1.LeaderResponse](ctx, c.base.root, c.base.pid, &electionv1.LeaderRequest{Election: election})
	if err != nil {
		return backends.LeaderInfo{}, fmt.Errorf("runtime: leader %q: %w", election, err)
	}
	return protoconv.LeaderInfoFromProto(election, resp.GetLeader()), nil
}

// Observe sends the current leader (if any) and then every change until
// ctx ends, when the channel is closed. A change to "no leader" is sent as
// a LeaderInfo with an empty Value and Epoch 0.
func (c *ElectionClient) Observe(ctx context.Context, election string) (<-chan backends.LeaderInfo, error) {
	const op = "runtime: observe"
	if err := c.base.usable(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, election, err)
	}
	o := &observer{c: c, id: newRequestID(), election: election, wake: make(chan struct{}, 1)}
	c.base.mu.Lock()
	c.observers[o.id] = o // events may arrive before the answer
	c.base.mu.Unlock()
	if err := o.subscribe(ctx); err != nil {
		c.dropObserver(o)
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, fmt.Errorf("%s %q: %w", op, election, err)
	}
	out := make(chan backends.LeaderInfo)
	octx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life, cancel)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		o.run(octx, out)
	}()
	return out, nil
}

func (c *ElectionClient) dropObserver(o *observer) {
	c.base.mu.Lock()
	delete(c.observers, o.id)
	c.base.mu.Unlock()
}

// onEvent runs on the sending actor's goroutine: it must not block.
func (c *ElectionClient) onEvent(msg any) {
	var sub string
	switch m := msg.(type) {
	case *electionv1.LeadershipLost:
		c.base.lose(m.GetLeadershipId())
		return
	case *electionv1.LeaderChanged:
		sub = m.GetSubscriptionId()
	case *subscriptionv1.Resync:
		sub = m.GetSubscriptionId()
	case *subscriptionv1.Ended:
		sub = m.GetSubscriptionId()
	default:
		return
	}
	c.base.mu.Lock()
	o := c.observers[sub]
	c.base.mu.Unlock()
	if o != nil {
		o.push(msg)
	}
}

func (c *ElectionClient) resign(l *clientLeadership) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CleanupTimeout)
	defer cancel()
	_, _ = actors.Request[*electionv1.ResignResponse](ctx, c.base.root, c.base.pid, &electionv1.ResignRequest{Election: l.election, LeadershipId: l.id})
}

// Close resigns every leadership still held through this client (bounded
// by CleanupTimeout each), ends every observation (their channels close)
// and removes the inbox. Later calls return ErrClosed. Close is idempotent.
func (c *ElectionClient) Close() error {
	held, ok := c.base.shut()
	if !ok {
		return nil
	}
	c.kill()
	for _, l := range held {
		c.resign(l)
		l.end()
	}
	c.wg.Wait()
	c.base.closeInbox()
	return nil
}

// clientLeadership is a leadership held in the election actor.
type clientLeadership struct {
	c        *ElectionClient
	election string
	value    string
	epoch    uint64
	id       string
	grantDone
}

func (l *clientLeadership) Election() string { return l.election }
func (l *clientLeadership) Value() string    { return l.value }
func (l *clientLeadership) Epoch() uint64    { return l.epoch }
func (l *clientLeadership) grantID() string  { return l.id }

// Resign gives up leadership; Done is closed afterwards, also when it was
// already lost (ErrNotHeld).
func (l *clientLeadership) Resign(ctx context.Context) error {
	return giveUp[*electionv1.ResignResponse](ctx, &l.c.base, l,
		&electionv1.ResignRequest{Election: l.election, LeadershipId: l.id}, fmt.Sprintf("runtime: resign %q", l.election))
}

// observer forwards one Observe subscription's events to its channel. The
// inbox queues events here without blocking (the actor's window bounds
// the queue); the observer's goroutine forwards and acknowledges them.
type observer struct {
	c        *ElectionClient
	id       string
	election string

	mu    sync.Mutex
	queue []any
	wake  chan struct{}
}

func (o *observer) push(msg any) {
	o.mu.Lock()
	o.queue = append(o.queue, msg)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// next returns the next event, or false when ctx ended.
func (o *observer) next(ctx context.Context) (any, bool) {
	for {
		o.mu.Lock()
		if len(o.queue) > 0 {
			msg := o.queue[0]
			o.queue[0] = nil
			o.queue = o.queue[1:]
			o.mu.Unlock()
			return msg, true
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (o *observer) subscribe(ctx context.Context) error {
	_, err := actors.Request[*electionv1.ObserveResponse](ctx, o.c.base.root, o.c.base.pid, &electionv1.ObserveRequest{
		Election: o.election, SubscriptionId: o.id, Subscriber: actors.SubscriberOf(o.c.base.inbox.pid),
	})
	if err != nil && ctx.Err() != nil {
		// The actor may have registered us before we stopped listening.
		o.c.base.root.Send(o.c.base.pid, &subscriptionv1.UnsubscribeRequest{SubscriptionId: o.id})
	}
	return err
}

func (o *observer) ack(seq uint64) {
	o.c.base.root.Send(o.c.base.pid, &subscriptionv1.Ack{SubscriptionId: o.id, Seq: seq})
}

// run forwards events until ctx ends or the subscription ends for good.
func (o *observer) run(ctx context.Context, out chan<- backends.LeaderInfo) {
	defer close(out)
	unsubscribe := true
	defer func() {
		o.c.dropObserver(o)
		if unsubscribe {
			o.c.base.root.Send(o.c.base.pid, &subscriptionv1.UnsubscribeRequest{SubscriptionId: o.id})
		}
	}()
	last := backends.LeaderInfo{Election: o.election} // "no leader" is not sent first
	emit := func(info backends.LeaderInfo) bool {
		if info == last {
			return true
		}
		select {
		case out <- info:
			last = info
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		msg, ok := o.next(ctx)
		if !ok {
			return
		}
		switch m := msg.(type) {
		case *electionv1.LeaderChanged:
			if !emit(protoconv.LeaderInfoFromProto(o.election, m.GetLeader())) {
				return
			}
			o.ack(m.GetSeq())
		case *subscriptionv1.Resync:
			o.ack(m.GetSeq())
			if !o.resync(ctx, emit) {
				return
			}
		case *subscriptionv1.Ended:
			o.ack(m.GetSeq())
			unsubscribe = false
			if !o.resubscribe(ctx, m.GetStatus()) {
				return
			}
			unsubscribe = true
			// "No leader" is not replayed by a new subscription: read it.
			if !o.resync(ctx, emit) {
				return
			}
		}
	}
}

// resync reads the leader again after events were dropped and sends it if
// it changed. Failures other than ctx ending are left to the next event.
func (o *observer) resync(ctx context.Context, emit func(backends.LeaderInfo) bool) bool {
	info, err := o.c.Leader(ctx, o.election)
	switch {
	case errors.Is(err, backends.ErrNotFound):
		info = backends.LeaderInfo{Election: o.election}
	case err != nil:
		o.c.opts.Logger.Debug("baton: observe resync failed", "election", o.election, "err", err)
		return ctx.Err() == nil
	}
	return emit(info)
}

// resubscribe follows an Ended subscription. When the actor was closed (or
// the request can never succeed) the observation is over; when it was
// restarted, the client subscribes again — the new subscription starts with
// the current leader, so only changes reach the channel.
func (o *observer) resubscribe(ctx context.Context, st *statusv1.Status) bool {
	backoff := 50 * time.Millisecond
	err := st.Err()
	for {
		if err == nil || errors.Is(err, backends.ErrClosed) || errors.Is(err, backends.ErrNotSupported) ||
			errors.Is(err, backends.ErrInvalidArgument) {
			return false
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
		if err = o.subscribe(ctx); err == nil {
			return true
		}
		o.c.opts.Logger.Debug("baton: observe resubscribe failed", "election", o.election, "err", err)
	}
}
