package components

import (
	"github.com/asynkron/protoactor-go/actor"
)

// DefaultSubscriberWindow is how many events a subscriber may have
// unacknowledged before the hub stops sending to it (it then gets a Resync
// once it catches up).
const DefaultSubscriberWindow = 1024

// Hub fans one stream of events per topic (a config key or prefix, a service
// name, an election) out to many subscriber PIDs. It is owned by one actor
// and used only from that actor's Receive, so it needs no locks.
//
// Flow control is by acknowledgement: every event carries a per-subscription
// sequence number and the subscriber acknowledges what it processed. A
// subscriber that falls more than Window events behind stops receiving
// events — so it can never stall the others or grow memory without bound —
// and, once it has acknowledged everything it was sent, receives one Resync
// message telling it to re-read the current state. Nothing is lost silently.
// Subscribers are death-watched: one that stops is removed.
type Hub struct {
	// Window overrides DefaultSubscriberWindow when positive.
	Window uint64

	subs    map[string]*hubSub            // subscription id → subscriber
	byTopic map[string]map[string]*hubSub // topic → id → subscriber
	byPID   map[string]map[string]*hubSub // pid key → id → subscriber
}

type hubSub struct {
	id, topic  string
	pid        *actor.PID
	sent       uint64 // seq of the last event sent
	acked      uint64 // highest seq acknowledged
	overflowed bool
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]*hubSub{}, byTopic: map[string]map[string]*hubSub{}, byPID: map[string]map[string]*hubSub{}}
}

func pidKey(p *actor.PID) string { return p.Address + "/" + p.Id }

func (h *Hub) window() uint64 {
	if h.Window > 0 {
		return h.Window
	}
	return DefaultSubscriberWindow
}

// Add registers subscription id on topic for pid and death-watches pid.
// It reports whether the topic had no subscribers before (the caller then
// starts the one backend watch for it).
func (h *Hub) Add(ctx actor.Context, topic, id string, pid *actor.PID) (first bool) {
	if old, ok := h.subs[id]; ok {
		h.remove(ctx, old)
	}
	s := &hubSub{id: id, topic: topic, pid: pid}
	h.subs[id] = s
	t := h.byTopic[topic]
	if t == nil {
		t = map[string]*hubSub{}
		h.byTopic[topic] = t
		first = true
	}
	t[id] = s
	k := pidKey(pid)
	if h.byPID[k] == nil {
		h.byPID[k] = map[string]*hubSub{}
		ctx.Watch(pid)
	}
	h.byPID[k][id] = s
	return first
}

// Remove drops subscription id. It returns its topic and whether that topic
// has no subscribers left (the caller then stops the backend watch).
func (h *Hub) Remove(ctx actor.Context, id string) (topic string, last bool) {
	s, ok := h.subs[id]
	if !ok {
		return "", false
	}
	return s.topic, h.remove(ctx, s)
}

func (h *Hub) remove(ctx actor.Context, s *hubSub) (last bool) {
	delete(h.subs, s.id)
	if t := h.byTopic[s.topic]; t != nil {
		delete(t, s.id)
		if len(t) == 0 {
			delete(h.byTopic, s.topic)
			last = true
		}
	}
	k := pidKey(s.pid)
	if p := h.byPID[k]; p != nil {
		delete(p, s.id)
		if len(p) == 0 {
			delete(h.byPID, k)
			ctx.Unwatch(s.pid)
		}
	}
	return last
}

// RemovePID drops every subscription of a stopped subscriber and returns
// the topics left without subscribers.
func (h *Hub) RemovePID(ctx actor.Context, pid *actor.PID) (emptied []string) {
	p := h.byPID[pidKey(pid)]
	for _, s := range p {
		if h.remove(ctx, s) {
			emptied = append(emptied, s.topic)
		}
	}
	return emptied
}

// Publish sends one event to every subscriber of topic. build makes the
// message for one subscriber from its subscription id and sequence number.
func (h *Hub) Publish(ctx actor.Context, topic string, build func(id string, seq uint64) any) {
	for _, s := range h.byTopic[topic] {
		h.send(ctx, s, build)
	}
}

// SendTo sends an event to one subscription only (e.g. its initial snapshot).
func (h *Hub) SendTo(ctx actor.Context, id string, build func(id string, seq uint64) any) bool {
	s, ok := h.subs[id]
	if ok {
		h.send(ctx, s, build)
	}
	return ok
}

func (h *Hub) send(ctx actor.Context, s *hubSub, build func(id string, seq uint64) any) {
	if s.overflowed {
		return
	}
	if s.sent-s.acked >= h.window() {
		s.overflowed = true
		return
	}
	s.sent++
	ctx.Send(s.pid, build(s.id, s.sent))
}

// Ack records that subscription id processed events up to seq. When the
// subscriber had overflowed and is now caught up, resync is sent to it
// (built from its id and a fresh sequence number) and delivery resumes.
func (h *Hub) Ack(ctx actor.Context, id string, seq uint64, resync func(id string, seq uint64) any) {
	s, ok := h.subs[id]
	if !ok || seq <= s.acked {
		return
	}
	if seq > s.sent {
		seq = s.sent
	}
	s.acked = seq
	if s.overflowed && s.acked == s.sent {
		s.overflowed = false
		s.sent++
		ctx.Send(s.pid, resync(s.id, s.sent))
	}
}

// Topics returns the topics that have subscribers.
func (h *Hub) Topics() []string {
	out := make([]string, 0, len(h.byTopic))
	for t := range h.byTopic {
		out = append(out, t)
	}
	return out
}

// Subscribers returns how many subscriptions topic has.
func (h *Hub) Subscribers(topic string) int { return len(h.byTopic[topic]) }

// Topic returns the topic of subscription id.
func (h *Hub) Topic(id string) (string, bool) {
	s, ok := h.subs[id]
	if !ok {
		return "", false
	}
	return s.topic, true
}
