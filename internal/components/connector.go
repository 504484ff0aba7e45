package components

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/baton-go/baton/backends"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// ConnectorSupervisorConfig configures the connector supervisor.
type ConnectorSupervisorConfig struct {
	// Connectors are the backends' shared connectors, one per backend.
	Connectors []backends.Connector
	// HealthInterval is the time between health checks. Default: 1s.
	HealthInterval time.Duration
	// ConnectTimeout bounds one Connect or HealthCheck. Default: 5s.
	ConnectTimeout time.Duration
	// Backoff is the restart schedule of a failed connector actor. Its Max
	// defaults to HealthInterval (not to DefaultBackoff's 10s): a restart
	// only probes the server again — the Redis and etcd clients reconnect
	// by themselves — so a lost backend is probed at least as often as a
	// healthy one is checked, and service resumes about one health
	// interval after the server is back.
	Backoff Backoff
	// RefusedRetry is the wait before trying again after the server
	// refused the connector's settings (ErrUnauthenticated: wrong or
	// missing credentials; ErrInvalidArgument: e.g. a Redis DB index the
	// server does not have). Retrying sooner cannot help until someone
	// fixes the configuration or the server. Default: 30s.
	RefusedRetry time.Duration
	// Logger receives state changes. Default: discard.
	Logger *slog.Logger
}

// DefaultRefusedRetry is the default ConnectorSupervisorConfig.RefusedRetry.
const DefaultRefusedRetry = 30 * time.Second

// ConnectorSupervisor is the parent of one connector actor per backend. A
// connector actor connects when it starts and health-checks on an interval;
// when either fails, the actor fails, and the supervisor restarts it after a
// capped, jittered exponential delay (BackoffStrategy) — forever, while the
// node runs. Every state change (CONNECTING, UP, DOWN with the next retry
// delay, CLOSED) is published to subscribers (connectorv1.SubscribeRequest),
// which is how component actors learn to fail fast while their backend is
// down and to resume, without restarting, when it is back.
//
// A server that refuses the settings is treated apart (backends.Refused):
// the state goes DOWN with the typed cause at once, so component actors
// answer ErrUnauthenticated (or ErrInvalidArgument) instead of
// ErrUnavailable, the refusal is logged at error level, and the connector
// tries again only every RefusedRetry — a wrong password is not retried
// ten times a second forever, and a fixed one is picked up without a
// restart of the node.
type ConnectorSupervisor struct {
	cfg      ConnectorSupervisorConfig
	strategy *BackoffStrategy
	hub      *Hub
	states   map[string]*connectorv1.ConnectorState
	children map[string]*actor.PID // backend → child
	byChild  map[string]string     // child id → backend
	stopping bool
}

// NewConnectorSupervisorProps returns the props of a ConnectorSupervisor.
// Spawn it with SpawnNamed.
func NewConnectorSupervisorProps(cfg ConnectorSupervisorConfig) *actor.Props {
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = cfg.HealthInterval
	}
	if cfg.RefusedRetry <= 0 {
		cfg.RefusedRetry = DefaultRefusedRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &ConnectorSupervisor{
		cfg: cfg, hub: NewHub(),
		states:   map[string]*connectorv1.ConnectorState{},
		children: map[string]*actor.PID{}, byChild: map[string]string{},
	}
	return actor.PropsFromProducer(func() actor.Actor { return s },
		actor.WithSupervisor(s.strategyFor()))
}

// strategyFor creates the backoff strategy; restarts it schedules are
// reported back to the supervisor as messages so that state stays owned by
// its mailbox.
func (s *ConnectorSupervisor) strategyFor() actor.SupervisorStrategy {
	s.strategy = NewBackoffStrategy(s.cfg.Backoff, s.cfg.Logger, nil)
	return s.strategy
}

type connectorFailed struct {
	child   *actor.PID
	attempt int
	delay   time.Duration
	reason  any
}

type connectorUp struct{ child *actor.PID }

// connectorRefused reports a refusal of the settings; the child retries by
// itself after retry.
type connectorRefused struct {
	child *actor.PID
	err   error
	retry time.Duration
}

type connectorConnecting struct{ child *actor.PID }

// Receive implements actor.Actor.
func (s *ConnectorSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		self := ctx.Self()
		sys := ctx.ActorSystem()
		s.strategy.onRestartScheduled = func(child *actor.PID, attempt int, delay time.Duration, reason any) {
			sys.Root.Send(self, &connectorFailed{child: child, attempt: attempt, delay: delay, reason: reason})
		}
		for _, c := range s.cfg.Connectors {
			name := c.Backend()
			s.states[name] = &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_CONNECTING, Since: timestamppb.Now()}
			pid, err := ctx.SpawnNamed(newConnectorActorProps(c, s.cfg, s.strategy), name)
			if err != nil {
				s.cfg.Logger.Error("baton: spawn connector actor", "backend", name, "err", err)
				continue
			}
			s.children[name] = pid
			s.byChild[pid.Id] = name
		}
	case *actor.Stopping:
		s.stopping = true
		s.strategy.Stop()
		for name, st := range s.states {
			s.setState(ctx, name, &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_CLOSED, Cause: st.GetCause()})
		}
	case *connectorConnecting:
		if name, ok := s.byChild[m.child.Id]; ok {
			prev := s.states[name]
			s.setState(ctx, name, &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_CONNECTING,
				Cause: prev.GetCause(), Attempt: prev.GetAttempt()})
		}
	case *connectorUp:
		if name, ok := s.byChild[m.child.Id]; ok {
			s.setState(ctx, name, &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_UP})
		}
	case *connectorFailed:
		if name, ok := s.byChild[m.child.Id]; ok && !s.stopping {
			err, _ := m.reason.(error)
			if err == nil {
				err = fmt.Errorf("%v", m.reason)
			}
			s.setState(ctx, name, &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_DOWN,
				Cause: statusv1.FromError(err), Attempt: uint32(m.attempt), NextRetry: durationpb.New(m.delay)})
		}
	case *connectorRefused:
		if name, ok := s.byChild[m.child.Id]; ok && !s.stopping {
			prev := s.states[name]
			attempt := prev.GetAttempt() + 1
			if prev.GetState() == connectorv1.State_STATE_UP {
				attempt = 1
			}
			s.cfg.Logger.Error("baton: backend refused the connection settings; fix the configuration or the server",
				"backend", name, "err", m.err, "next_retry", m.retry)
			s.setState(ctx, name, &connectorv1.ConnectorState{Backend: name, State: connectorv1.State_STATE_DOWN,
				Cause: statusv1.FromError(m.err), Attempt: attempt, NextRetry: durationpb.New(m.retry)})
		}
	case *connectorv1.StateRequest:
		resp := &connectorv1.StateResponse{Status: statusv1.OK()}
		for _, name := range s.sortedBackends() {
			if m.GetBackend() == "" || m.GetBackend() == name {
				resp.Connectors = append(resp.Connectors, s.states[name])
			}
		}
		if m.GetBackend() != "" && len(resp.Connectors) == 0 {
			resp.Status = statusv1.FromError(fmt.Errorf("connector %q: %w", m.GetBackend(), backends.ErrNotFound))
		}
		respond(ctx, resp)
	case *connectorv1.SubscribeRequest:
		pid := subscriberPID(ctx, m.GetSubscriber())
		if pid == nil || m.GetSubscriptionId() == "" {
			respond(ctx, &connectorv1.SubscribeResponse{Status: statusv1.FromError(
				backends.Invalid("subscription_id", m.GetSubscriptionId(), "subscription id and subscriber are required"))})
			return
		}
		topic := m.GetBackend()
		s.hub.Add(ctx, topic, m.GetSubscriptionId(), pid)
		respond(ctx, &connectorv1.SubscribeResponse{Status: statusv1.OK()})
		for _, name := range s.sortedBackends() {
			if topic == "" || topic == name {
				st := s.states[name]
				s.hub.SendTo(ctx, m.GetSubscriptionId(), stateChanged(st))
			}
		}
	case *subscriptionv1.UnsubscribeRequest:
		s.hub.Remove(ctx, m.GetSubscriptionId())
		respond(ctx, &subscriptionv1.UnsubscribeResponse{Status: statusv1.OK()})
	case *subscriptionv1.Ack:
		s.hub.Ack(ctx, m.GetSubscriptionId(), m.GetSeq(), resyncFor)
	case *actor.Terminated:
		s.hub.RemovePID(ctx, m.Who)
	default:
		rejectUnknown(ctx, m)
	}
}

func (s *ConnectorSupervisor) sortedBackends() []string {
	out := make([]string, 0, len(s.states))
	for n := range s.states {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *ConnectorSupervisor) setState(ctx actor.Context, name string, st *connectorv1.ConnectorState) {
	prev := s.states[name]
	if st.Since == nil {
		st.Since = timestamppb.Now()
	}
	s.states[name] = st
	if prev.GetState() != st.GetState() || st.GetState() == connectorv1.State_STATE_DOWN {
		s.cfg.Logger.Info("baton: connector state", "backend", name, "state", st.GetState().String(),
			"attempt", st.GetAttempt(), "next_retry", st.GetNextRetry().AsDuration(), "cause", st.GetCause().GetMessage())
	}
	build := stateChanged(st)
	s.hub.Publish(ctx, "", build)
	s.hub.Publish(ctx, name, build)
}

func stateChanged(st *connectorv1.ConnectorState) func(id string, seq uint64) any {
	return func(id string, seq uint64) any {
		return &connectorv1.StateChanged{SubscriptionId: id, Seq: seq, Connector: st}
	}
}

func resyncFor(id string, seq uint64) any {
	return &subscriptionv1.Resync{SubscriptionId: id, Seq: seq, Reason: "subscriber fell behind; events were dropped"}
}

// connectorActor owns the connection of one backend.
type connectorActor struct {
	conn     backends.Connector
	cfg      ConnectorSupervisorConfig
	strategy *BackoffStrategy
	timer    *time.Timer
	gen      uint64
}

type healthTick struct{ gen uint64 }

// retryTick asks a connector actor whose settings were refused to try again.
type retryTick struct{ gen uint64 }

func newConnectorActorProps(conn backends.Connector, cfg ConnectorSupervisorConfig, strategy *BackoffStrategy) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &connectorActor{conn: conn, cfg: cfg, strategy: strategy}
	})
}

func (a *connectorActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Send(ctx.Parent(), &connectorConnecting{child: ctx.Self()})
		a.connect(ctx)
	case *retryTick:
		if m.gen == a.gen {
			a.connect(ctx)
		}
	case *healthTick:
		if m.gen != a.gen {
			return
		}
		if err := a.check(false); err != nil {
			a.fail(ctx, err)
			return
		}
		a.schedule(ctx, a.cfg.HealthInterval, false)
	case *actor.Restarting, *actor.Stopping:
		a.gen++
		if a.timer != nil {
			a.timer.Stop()
		}
	}
}

// connect connects and checks; on success it reports UP and schedules the
// first health check.
func (a *connectorActor) connect(ctx actor.Context) {
	if err := a.check(true); err != nil {
		a.fail(ctx, err)
		return
	}
	a.strategy.Reset(ctx.Self())
	ctx.Send(ctx.Parent(), &connectorUp{child: ctx.Self()})
	a.schedule(ctx, a.cfg.HealthInterval, false)
}

// fail handles a failed check. A refusal of the settings is reported and
// retried after RefusedRetry by the actor itself; any other failure fails
// the actor, which the supervisor restarts after a backoff delay.
func (a *connectorActor) fail(ctx actor.Context, err error) {
	if backends.Refused(err) {
		ctx.Send(ctx.Parent(), &connectorRefused{child: ctx.Self(), err: err, retry: a.cfg.RefusedRetry})
		a.schedule(ctx, a.cfg.RefusedRetry, true)
		return
	}
	panic(err) // the supervisor restarts us after a backoff delay
}

// check connects (on start) and health-checks, bounded by ConnectTimeout.
func (a *connectorActor) check(connect bool) error {
	c, cancel := context.WithTimeout(context.Background(), a.cfg.ConnectTimeout)
	defer cancel()
	if connect {
		if err := a.conn.Connect(c); err != nil {
			return err
		}
	}
	return a.conn.HealthCheck(c)
}

// schedule sends the actor a health check (or, with retry, a new connect
// attempt) after d; a later schedule, a restart or a stop voids it.
func (a *connectorActor) schedule(ctx actor.Context, d time.Duration, retry bool) {
	a.gen++
	gen, self, root := a.gen, ctx.Self(), ctx.ActorSystem().Root
	var msg any = &healthTick{gen: gen}
	if retry {
		msg = &retryTick{gen: gen}
	}
	a.timer = time.AfterFunc(d, func() { root.Send(self, msg) })
}
