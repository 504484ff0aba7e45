package components

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	connectorv1 "github.com/baton-go/baton/messages/connector/v1"
	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// BackendGate is how a component actor follows its backend's connector:
// it subscribes to the connector supervisor's state events and answers Err()
// with ErrUnavailable while the backend is down, so requests fail fast
// instead of waiting on a dead server. When the connector is up again the
// gate opens with no restart of the component actor.
//
// A gate without a supervisor (nil PID) is always open: the component then
// reports backend errors as they come.
type BackendGate struct {
	backend    string
	supervisor *actor.PID
	subID      string
	up         bool
	closed     bool
	cause      error
}

// NewBackendGate returns a gate for backend ("redis" or "etcd"), open until
// told otherwise.
func NewBackendGate(backend string) *BackendGate {
	return &BackendGate{backend: backend, up: true}
}

// Subscribe asks the connector supervisor for state events. Call it from the
// component actor's Started handler.
func (g *BackendGate) Subscribe(ctx actor.Context, supervisor *actor.PID) {
	if supervisor == nil {
		return
	}
	g.supervisor = supervisor
	g.subID = "gate-" + ctx.Self().Id
	ctx.Request(supervisor, &connectorv1.SubscribeRequest{
		Backend: g.backend, SubscriptionId: g.subID, Subscriber: actors.SubscriberOf(ctx.Self()),
	})
}

// Handle consumes the gate's own messages and reports whether msg was one.
func (g *BackendGate) Handle(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *connectorv1.StateChanged:
		if m.GetSubscriptionId() != g.subID {
			return false
		}
		g.apply(m.GetConnector())
		ctx.Send(g.supervisor, &subscriptionv1.Ack{SubscriptionId: g.subID, Seq: m.GetSeq()})
		return true
	case *connectorv1.SubscribeResponse:
		if err := m.GetStatus().Err(); err != nil {
			ctx.Logger().Warn("baton: connector subscription refused", "backend", g.backend, "err", err)
		}
		return true
	case *subscriptionv1.Resync:
		if m.GetSubscriptionId() != g.subID || g.subID == "" {
			return false
		}
		// Events were dropped: ask for the current state again.
		ctx.Send(g.supervisor, &subscriptionv1.Ack{SubscriptionId: g.subID, Seq: m.GetSeq()})
		ctx.Request(g.supervisor, &connectorv1.StateRequest{Backend: g.backend})
		return true
	case *connectorv1.StateResponse:
		for _, c := range m.GetConnectors() {
			if c.GetBackend() == g.backend {
				g.apply(c)
			}
		}
		return true
	}
	return false
}

// apply follows a state change. CONNECTING keeps the gate as it was: open
// while a first connection is made, closed while a failed one is retried.
func (g *BackendGate) apply(c *connectorv1.ConnectorState) {
	switch c.GetState() {
	case connectorv1.State_STATE_UP:
		g.up, g.closed, g.cause = true, false, nil
	case connectorv1.State_STATE_DOWN, connectorv1.State_STATE_CLOSED:
		g.up = false
		g.closed = c.GetState() == connectorv1.State_STATE_CLOSED
		if c.GetCause() != nil {
			g.cause = c.GetCause().Err()
		} else {
			g.cause = fmt.Errorf("connector %s", c.GetState())
		}
	}
}

// Up reports whether the backend is usable.
func (g *BackendGate) Up() bool { return g.up }

// Err is nil while the backend is up. Otherwise it is the connector's last
// failure as the connector reported it (which names the backend and
// carries its sentinel once): ErrUnavailable for a backend that cannot be
// reached, ErrUnauthenticated or ErrInvalidArgument for a server that
// refused the connector's settings, ErrClosed once the connector closed.
func (g *BackendGate) Err() error {
	switch {
	case g.Up():
		return nil
	case g.closed:
		return fmt.Errorf("%s backend: %w", g.backend, backends.ErrClosed)
	case g.cause != nil && (backends.Refused(g.cause) || errors.Is(g.cause, backends.ErrUnavailable)):
		return g.cause
	}
	return backends.Unavailable(g.backend+" backend", g.cause)
}
