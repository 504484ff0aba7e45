package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/protoconv"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// ElectionActorConfig configures the election actor, which serves leader
// elections (electionv1 Campaign/Cancel/Resign/Leader/Observe).
type ElectionActorConfig struct {
	// Elector is the backend election component. Default: nil, and election
	// requests are answered CODE_NOT_SUPPORTED.
	Elector backends.Elector
	// Backend is "redis" or "etcd", for the connector gate.
	Backend string
	// Supervisor is the connector supervisor. Default: nil, no gate (the
	// backend's own errors are reported as they come).
	Supervisor *actor.PID
	// OpTimeout bounds one backend call made from the mailbox (Resign,
	// Leader) and the resignations done when the actor stops. Default: 5s.
	OpTimeout time.Duration
	// Logger. Default: discard.
	Logger *slog.Logger
}

// ElectionActor serves leader elections through one backends.Elector.
//
// Campaigns never block the mailbox: each runs its backend Campaign in a
// goroutine whose context is cancelled by CancelRequest, the request's
// timeout or the actor stopping. There is no local queue: the backend
// decides who leads. Observations are shared: one backend Observe per
// election, fanned out to every local subscriber through a Hub, with the
// subscribers death-watched.
//
// Leaderships live in the actor and are named by leadership_id; their loss
// is sent as LeadershipLost to the campaign's subscriber. A leadership
// lasts until it is resigned, lost, withdrawn with CancelRequest, or the
// actor stops. Candidates are not death-watched: the sender of a request is
// often a short-lived future, and watching one would complete it. Campaign
// requests without a sender are dropped, since nobody could ever learn of
// (and resign) their leadership. When the actor stops or restarts it
// cancels every goroutine and waits for them, answers every parked campaign
// (CODE_CLOSED when stopping, CODE_UNAVAILABLE when restarting), resigns
// every leadership it holds (sending LeadershipLost with CODE_CLOSED) and
// ends every observation with subscriptionv1.Ended.
type ElectionActor struct {
	cfg  ElectionActorConfig
	gate *BackendGate
	log  *slog.Logger

	incarnation

	campaigns    map[string]*campaign       // request id → running campaign
	leaderships  map[string]*heldLeadership // leadership id → leadership
	granted      map[string]string          // request id → leadership id
	hub          *Hub                       // observe subscriptions
	observations map[string]*leaderWatch    // election → its one backend Observe
	watchSeq     uint64                     // numbers leaderWatch instances
}

// NewElectionActorProps returns the props of an election actor. Spawn it
// with SpawnNamed. A restart gives a fresh instance (the old one cleans up
// in Restarting).
func NewElectionActorProps(cfg ElectionActorConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newElectionActor(cfg) })
}

// newElectionActor applies cfg's defaults and builds a fresh instance.
func newElectionActor(cfg ElectionActorConfig) *ElectionActor {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &ElectionActor{
		incarnation: incarnation{opTimeout: cfg.OpTimeout},
		cfg:         cfg, gate: NewBackendGate(cfg.Backend), log: cfg.Logger,
		campaigns: map[string]*campaign{}, leaderships: map[string]*heldLeadership{},
		granted: map[string]string{}, hub: NewHub(), observations: map[string]*leaderWatch{},
	}
}

// Receive implements actor.Actor.
func (a *ElectionActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	if a.gate.Handle(ctx, msg) || a.stale(msg) {
		return
	}
	switch m := msg.(type) {
	case *actor.Started:
		a.begin(ctx)
		a.gate.Subscribe(ctx, a.cfg.Supervisor)
	case *actor.Stopping:
		a.shutdown(ctx, fmt.Errorf("election actor %s stopped: %w", ctx.Self().Id, backends.ErrClosed))
	case *actor.Restarting:
		a.shutdown(ctx, backends.Unavailable("election actor "+ctx.Self().Id, errors.New("restarted")))

	case *electionv1.CampaignRequest:
		a.onCampaign(ctx, m)
	case *electionv1.CancelRequest:
		a.onCancel(ctx, m)
	case *electionv1.ResignRequest:
		a.onResign(ctx, m)
	case *electionv1.LeaderRequest:
		a.onLeader(ctx, m)
	case *electionv1.ObserveRequest:
		a.onObserve(ctx, m)
	case *subscriptionv1.UnsubscribeRequest:
		a.unsubscribe(ctx, m.GetSubscriptionId())
		respond(ctx, &subscriptionv1.UnsubscribeResponse{Status: statusv1.OK()})
	case *subscriptionv1.Ack:
		a.hub.Ack(ctx, m.GetSubscriptionId(), m.GetSeq(), resyncFor)
	case *actor.Terminated:
		a.onSubscriberStopped(ctx, m.Who)
	case *electCampaigned:
		a.onCampaigned(ctx, m.c)
	case *electLeadershipEnded:
		a.onLeadershipEnded(ctx, m.id)
	case *electWatchStarted:
		a.onWatchStarted(ctx, m)
	case *electObserved:
		a.onObserved(ctx, m)
	case *electWatchEnded:
		a.onWatchEnded(ctx, m)
	case *actor.Stopped:
	default:
		rejectUnknown(ctx, msg)
	}
}

// claimRequestID checks that a requester-chosen id is not in use by a
// running campaign or a leadership it won.
func (a *ElectionActor) claimRequestID(id string) (string, error) {
	return claimRequestID(id, func(id string) bool {
		_, c := a.campaigns[id]
		_, g := a.granted[id]
		return c || g
	})
}

// campaign is a parked CampaignRequest whose backend Campaign runs in a
// goroutine.
type campaign struct {
	requestID  string
	election   string
	value      string
	sender     *actor.PID
	subscriber *actor.PID
	cancel     context.CancelFunc
	canceled   bool         // a CancelRequest arrived: give the grant up
	cancelers  []*actor.PID // answered once the backend call has returned

	mu         sync.Mutex // the backend call's result, written by its goroutine
	leadership backends.Leadership
	err        error
	claimed    bool
}

// result takes the backend call's outcome, once.
func (c *campaign) result() (l backends.Leadership, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claimed {
		return nil, false, nil
	}
	c.claimed = true
	return c.leadership, true, c.err
}

// heldLeadership is a leadership obtained through the actor.
type heldLeadership struct {
	id         string
	election   string
	requestID  string
	leadership backends.Leadership
	subscriber *actor.PID
	retrying   bool // a failed Resign is retried in the background
}

// leaderWatch is the one backend Observe of an election, shared by every
// local subscriber.
type leaderWatch struct {
	id       uint64 // tells this watch from an earlier one of the election
	election string
	cancel   context.CancelFunc
	started  bool                 // the backend Observe call succeeded
	pending  []pendingObserve     // ObserveRequests answered once started
	last     *backends.LeaderInfo // nil until the backend reported
	subs     map[string]bool      // subscription ids (may include removed ones)
}

type pendingObserve struct {
	sender *actor.PID
	subID  string
}

// Continuation messages of the election goroutines.
type (
	electCampaigned struct {
		stamp
		c *campaign
	}
	electLeadershipEnded struct {
		stamp
		id string
	}
	electWatchStarted struct {
		stamp
		election string
		watch    uint64
		err      error
	}
	electObserved struct {
		stamp
		election string
		watch    uint64
		info     backends.LeaderInfo
	}
	electWatchEnded struct {
		stamp
		election string
		watch    uint64
	}
)

func campaignFailed(err error) *electionv1.CampaignResponse {
	return &electionv1.CampaignResponse{Status: statusv1.FromError(err)}
}

func errNoElector() error {
	return fmt.Errorf("election actor: no elector: %w", backends.ErrNotSupported)
}

func (a *ElectionActor) onCampaign(ctx actor.Context, m *electionv1.CampaignRequest) {
	if ctx.Sender() == nil {
		a.log.Debug("baton: campaign without sender dropped", "election", m.GetElection())
		return
	}
	if a.cfg.Elector == nil {
		respond(ctx, campaignFailed(errNoElector()))
		return
	}
	err := backends.ValidateName("election", m.GetElection())
	if err == nil {
		err = backends.ValidateValue([]byte(m.GetValue()), 0)
	}
	timeout, terr := durationOf("timeout", m.GetTimeout())
	if err == nil {
		err = terr
	}
	var id string
	if err == nil {
		id, err = a.claimRequestID(m.GetRequestId())
	}
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, campaignFailed(err))
		return
	}
	c := &campaign{
		requestID: id, election: m.GetElection(), value: m.GetValue(),
		sender: ctx.Sender(), subscriber: subscriberPID(ctx, m.GetSubscriber()),
	}
	var cctx context.Context
	if timeout > 0 {
		cctx, c.cancel = context.WithTimeout(a.life, timeout)
	} else {
		cctx, c.cancel = context.WithCancel(a.life)
	}
	a.campaigns[id] = c
	elector, send, st := a.cfg.Elector, a.sender(), a.stamp()
	a.spawn(func() {
		l, err := elector.Campaign(cctx, c.election, c.value)
		c.mu.Lock()
		c.leadership, c.err = l, err
		c.mu.Unlock()
		send(&electCampaigned{stamp: st, c: c})
	})
}

func (a *ElectionActor) onCampaigned(ctx actor.Context, c *campaign) {
	l, ok, err := c.result()
	if !ok {
		return
	}
	delete(a.campaigns, c.requestID)
	c.cancel()
	var resp *electionv1.CampaignResponse
	switch {
	case c.canceled:
		if l != nil {
			octx, cancel := a.opContext()
			a.resignAbandoned(octx, l)
			cancel()
		}
		resp = campaignFailed(withdrawn("election", c.election))
	case err != nil:
		resp = campaignFailed(err)
	default:
		resp = &electionv1.CampaignResponse{Status: statusv1.OK(), Leadership: a.holdLeadership(c, l)}
	}
	ctx.Send(c.sender, resp)
	for _, p := range c.cancelers {
		ctx.Send(p, &electionv1.CancelResponse{Status: statusv1.OK()})
	}
}

// onCancel withdraws a waiting campaign, or resigns the leadership it won.
func (a *ElectionActor) onCancel(ctx actor.Context, m *electionv1.CancelRequest) {
	id := m.GetRequestId()
	if c := a.campaigns[id]; c != nil {
		// Running: the answer waits until the backend call has returned.
		c.canceled = true
		c.cancelers = append(c.cancelers, ctx.Sender())
		c.cancel()
		return
	}
	if g, found := a.granted[id]; found {
		if l := a.leaderships[g]; l != nil {
			a.dropLeadership(l)
			octx, cancel := a.opContext()
			a.resignAbandoned(octx, l.leadership)
			cancel()
		}
	}
	respond(ctx, &electionv1.CancelResponse{Status: statusv1.OK()})
}

// holdLeadership records a won campaign and watches it for loss.
func (a *ElectionActor) holdLeadership(c *campaign, l backends.Leadership) *electionv1.Leadership {
	id := newHandle()
	a.leaderships[id] = &heldLeadership{id: id, election: c.election, requestID: c.requestID, leadership: l, subscriber: c.subscriber}
	a.granted[c.requestID] = id
	a.notifyWhenDone(l.Done(), &electLeadershipEnded{stamp: a.stamp(), id: id})
	return &electionv1.Leadership{Election: l.Election(), Value: l.Value(), Epoch: l.Epoch(), LeadershipId: id}
}

func (a *ElectionActor) dropLeadership(h *heldLeadership) {
	delete(a.leaderships, h.id)
	if a.granted[h.requestID] == h.id {
		delete(a.granted, h.requestID)
	}
}

// resignAbandoned resigns a leadership nobody will use.
func (a *ElectionActor) resignAbandoned(ctx context.Context, l backends.Leadership) {
	if err := l.Resign(ctx); err != nil && !errors.Is(err, backends.ErrNotHeld) {
		a.log.Warn("baton: resign of an abandoned leadership failed", "election", l.Election(), "err", err)
	}
}

func (a *ElectionActor) onResign(ctx actor.Context, m *electionv1.ResignRequest) {
	h := a.leaderships[m.GetLeadershipId()]
	var err error
	if h == nil || (m.GetElection() != "" && m.GetElection() != h.election) {
		err = fmt.Errorf("election %q: leadership %q: %w", m.GetElection(), m.GetLeadershipId(), backends.ErrNotHeld)
	} else if err = a.gate.Err(); err != nil {
		a.resignInBackground(h)
	}
	if err != nil {
		respond(ctx, &electionv1.ResignResponse{Status: statusv1.FromError(err)})
		return
	}
	octx, cancel := a.opContext()
	err = actorOpError(h.leadership.Resign(octx))
	cancel()
	if err == nil || errors.Is(err, backends.ErrNotHeld) {
		a.dropLeadership(h)
	} else {
		a.resignInBackground(h)
	}
	respond(ctx, &electionv1.ResignResponse{Status: statusv1.FromError(err)})
}

// resignInBackground keeps resigning h after a Resign its holder was
// answered an error for: h stays recorded, so the holder may resign again,
// but a leader that walks away does not stay leader through an
// auto-renewed lease. When the background resign succeeds the
// leadership's Done closes and the holder is told it is over.
func (a *ElectionActor) resignInBackground(h *heldLeadership) {
	if !h.retrying {
		h.retrying = true
		a.giveUpLater(h.leadership.Done(), h.leadership.Resign)
	}
}

// onLeadershipEnded handles a leadership whose Done closed. One still
// recorded was not resigned through the actor: it was lost.
func (a *ElectionActor) onLeadershipEnded(ctx actor.Context, id string) {
	h := a.leaderships[id]
	if h == nil {
		return
	}
	a.dropLeadership(h)
	ctx.Send(h.subscriber, &electionv1.LeadershipLost{Election: h.election, LeadershipId: id, Cause: statusv1.FromError(
		fmt.Errorf("election %q: leadership lost: %w", h.election, backends.ErrNotHeld))})
}

func (a *ElectionActor) onLeader(ctx actor.Context, m *electionv1.LeaderRequest) {
	err := errNoElector()
	if a.cfg.Elector != nil {
		err = backends.ValidateName("election", m.GetElection())
	}
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, &electionv1.LeaderResponse{Status: statusv1.FromError(err)})
		return
	}
	octx, cancel := a.opContext()
	info, err := a.cfg.Elector.Leader(octx, m.GetElection())
	err = actorOpError(err)
	cancel()
	if err != nil {
		respond(ctx, &electionv1.LeaderResponse{Status: statusv1.FromError(err)})
		return
	}
	respond(ctx, &electionv1.LeaderResponse{Status: statusv1.OK(), Leader: protoconv.LeaderInfoToProto(info)})
}

func leaderChanged(info backends.LeaderInfo) func(id string, seq uint64) any {
	msg := protoconv.LeaderInfoToProto(info)
	return func(id string, seq uint64) any {
		return &electionv1.LeaderChanged{SubscriptionId: id, Seq: seq, Leader: msg}
	}
}

func ended(st *statusv1.Status) func(id string, seq uint64) any {
	return func(id string, seq uint64) any {
		return &subscriptionv1.Ended{SubscriptionId: id, Seq: seq, Status: st}
	}
}

func (a *ElectionActor) onObserve(ctx actor.Context, m *electionv1.ObserveRequest) {
	election, subID := m.GetElection(), m.GetSubscriptionId()
	pid := subscriberPID(ctx, m.GetSubscriber())
	err := errNoElector()
	if a.cfg.Elector != nil {
		err = backends.ValidateName("election", election)
	}
	if err == nil && (subID == "" || pid == nil) {
		err = backends.Invalid("subscription_id", subID, "a subscription id and a subscriber are required")
	}
	if err == nil {
		err = a.gate.Err()
	}
	if err != nil {
		respond(ctx, &electionv1.ObserveResponse{Status: statusv1.FromError(err)})
		return
	}
	// A subscription id reused for another election leaves the old one.
	if old, ok := a.hub.Topic(subID); ok && old != election {
		a.unsubscribe(ctx, subID)
	}
	a.hub.Add(ctx, election, subID, pid)
	w := a.observations[election]
	if w == nil {
		w = a.startWatch(election)
	}
	w.subs[subID] = true
	if !w.started {
		w.pending = append(w.pending, pendingObserve{sender: ctx.Sender(), subID: subID})
		return
	}
	respond(ctx, &electionv1.ObserveResponse{Status: statusv1.OK()})
	if w.last != nil && w.last.Epoch != 0 {
		// A late subscriber starts from the current leader, like a fresh
		// backend Observe would.
		a.hub.SendTo(ctx, subID, leaderChanged(*w.last))
	}
}

// startWatch starts the one backend Observe of election.
func (a *ElectionActor) startWatch(election string) *leaderWatch {
	a.watchSeq++
	octx, cancel := context.WithCancel(a.life)
	w := &leaderWatch{id: a.watchSeq, election: election, cancel: cancel, subs: map[string]bool{}}
	a.observations[election] = w
	elector, send, st, id := a.cfg.Elector, a.sender(), a.stamp(), w.id
	a.spawn(func() {
		ch, err := elector.Observe(octx, election)
		send(&electWatchStarted{stamp: st, election: election, watch: id, err: err})
		if err != nil {
			return
		}
		for info := range ch {
			send(&electObserved{stamp: st, election: election, watch: id, info: info})
		}
		if octx.Err() == nil {
			send(&electWatchEnded{stamp: st, election: election, watch: id})
		}
	})
	return w
}

// currentWatch returns the watch of election if it is still the one with id.
func (a *ElectionActor) currentWatch(election string, id uint64) *leaderWatch {
	if w := a.observations[election]; w != nil && w.id == id {
		return w
	}
	return nil
}

func (a *ElectionActor) answerPending(ctx actor.Context, w *leaderWatch, st *statusv1.Status) {
	for _, p := range w.pending {
		if p.sender != nil {
			ctx.Send(p.sender, &electionv1.ObserveResponse{Status: st})
		}
	}
	w.pending = nil
}

func (a *ElectionActor) onWatchStarted(ctx actor.Context, m *electWatchStarted) {
	w := a.currentWatch(m.election, m.watch)
	if w == nil {
		return
	}
	if m.err != nil {
		a.answerPending(ctx, w, statusv1.FromError(m.err))
		a.endWatch(ctx, w, nil)
		return
	}
	w.started = true
	a.answerPending(ctx, w, statusv1.OK())
}

func (a *ElectionActor) onObserved(ctx actor.Context, m *electObserved) {
	w := a.currentWatch(m.election, m.watch)
	if w == nil {
		return
	}
	info := m.info
	w.last = &info
	a.hub.Publish(ctx, m.election, leaderChanged(info))
}

// onWatchEnded: the backend ended an observation nobody cancelled (its
// elector was closed). Its subscribers are told and dropped.
func (a *ElectionActor) onWatchEnded(ctx actor.Context, m *electWatchEnded) {
	if w := a.currentWatch(m.election, m.watch); w != nil {
		a.endWatch(ctx, w, statusv1.FromError(fmt.Errorf("election %q: observation ended: %w", m.election, backends.ErrClosed)))
	}
}

// endWatch stops w and removes its subscriptions, sending each an Ended
// with st first unless st is nil.
func (a *ElectionActor) endWatch(ctx actor.Context, w *leaderWatch, st *statusv1.Status) {
	w.cancel()
	delete(a.observations, w.election)
	for id := range w.subs {
		if topic, ok := a.hub.Topic(id); !ok || topic != w.election {
			continue
		}
		if st != nil {
			a.hub.SendTo(ctx, id, ended(st))
		}
		a.hub.Remove(ctx, id)
	}
}

// stopWatch stops the watch of an election that has no subscribers left.
func (a *ElectionActor) stopWatch(ctx actor.Context, election string) {
	if w := a.observations[election]; w != nil {
		a.answerPending(ctx, w, statusv1.OK())
		w.cancel()
		delete(a.observations, election)
	}
}

// unsubscribe removes one subscription, stopping its watch when it was the
// last.
func (a *ElectionActor) unsubscribe(ctx actor.Context, id string) {
	topic, last := a.hub.Remove(ctx, id)
	if w := a.observations[topic]; w != nil {
		delete(w.subs, id)
	}
	if last {
		a.stopWatch(ctx, topic)
	}
}

// onSubscriberStopped drops every subscription of a stopped subscriber.
func (a *ElectionActor) onSubscriberStopped(ctx actor.Context, who *actor.PID) {
	for _, topic := range a.hub.RemovePID(ctx, who) {
		a.stopWatch(ctx, topic)
	}
	for _, w := range a.observations {
		for id := range w.subs {
			if _, ok := a.hub.Topic(id); !ok {
				delete(w.subs, id)
			}
		}
	}
}

// shutdown ends this incarnation: every goroutine is cancelled and waited
// for, every parked campaign is answered with cause, every leadership is
// resigned and its holder told, every observation ended.
func (a *ElectionActor) shutdown(ctx actor.Context, cause error) {
	if !a.started() {
		return
	}
	a.end() // late continuations are stale from here on
	// One bound for all the resignations: a dead backend must not hold the
	// shutdown for OpTimeout per leadership.
	octx, cancel := context.WithTimeout(context.Background(), a.cfg.OpTimeout)
	defer cancel()

	for _, c := range a.campaigns {
		if l, ok, _ := c.result(); ok && l != nil {
			a.resignAbandoned(octx, l)
		}
		resp := campaignFailed(fmt.Errorf("election %q: %w", c.election, cause))
		if c.canceled {
			resp = campaignFailed(withdrawn("election", c.election))
		}
		ctx.Send(c.sender, resp)
		for _, p := range c.cancelers {
			ctx.Send(p, &electionv1.CancelResponse{Status: statusv1.OK()})
		}
	}
	a.campaigns = map[string]*campaign{}
	closed := statusv1.FromError(fmt.Errorf("election actor: %w", backends.ErrClosed))
	for _, h := range a.leaderships {
		a.resignAbandoned(octx, h.leadership)
		ctx.Send(h.subscriber, &electionv1.LeadershipLost{Election: h.election, LeadershipId: h.id, Cause: closed})
	}
	a.leaderships = map[string]*heldLeadership{}
	a.granted = map[string]string{}
	st := statusv1.FromError(cause)
	for _, w := range a.observations {
		a.answerPending(ctx, w, st)
		a.endWatch(ctx, w, st)
	}
}
