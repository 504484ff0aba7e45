package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/internal/components"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
)

// startRedisFollower resolves Spec.RedisService through discovery
// on etcd and returns the address to connect to. It then follows the
// service: when the registration moves, the Redis connector is retargeted
// to the new address (retrying with backoff until it answers). This is the
// seed's "lock ← discovery" relation: a component's backend found by name.
//
// It returns the address and follow, which starts following once the Redis
// connector exists.
func (n *Node) startRedisFollower(ctx context.Context) (addr string, follow func(*redis.Connector), err error) {
	service := n.cfg.RedisService
	disc, err := etcd.NewDiscovery(n.etcdConn, backends.DiscoveryOptions{Namespace: n.ns})
	if err != nil {
		return "", nil, err
	}
	n.closeOnStop("redis service follower discovery", disc)
	life, cancel := context.WithCancel(context.Background())
	events, err := disc.Watch(life, service)
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("node: watch redis service %q: %w", service, err)
	}
	view := map[string]backends.ServiceInfo{}
	// The first event is the snapshot; wait for it within ctx.
	select {
	case ev, ok := <-events:
		if !ok {
			cancel()
			return "", nil, backends.Unavailable("node: redis service "+service, fmt.Errorf("watch ended"))
		}
		view = backends.ApplyServiceEvent(view, ev)
	case <-ctx.Done():
		cancel()
		return "", nil, backends.Unavailable("node: resolving redis service "+service, ctx.Err())
	}
	addr = pickAddress(view)
	if addr == "" {
		cancel()
		return "", nil, fmt.Errorf("node: redis service %q has no registered instance: %w", service, backends.ErrNotFound)
	}
	done := make(chan struct{})
	var started bool // set by follow during start; read by the stop hook, which runs after start returns
	n.onStop("redis service follower", func(context.Context) error {
		cancel()
		if started {
			<-done
		}
		return nil
	})
	follow = func(conn *redis.Connector) {
		started = true
		go n.followRedis(life, done, conn, service, addr, events, view)
	}
	return addr, follow, nil
}

func (n *Node) followRedis(life context.Context, done chan struct{}, conn *redis.Connector, service, addr string,
	events <-chan backends.ServiceEvent, view map[string]backends.ServiceInfo) {
	defer close(done)
	current := addr
	backoff := components.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for ev := range events {
		view = backends.ApplyServiceEvent(view, ev)
		next := pickAddress(view)
		if next == "" || next == current {
			continue
		}
		for attempt := 1; ; attempt++ {
			rctx, c := context.WithTimeout(life, n.cfg.Components.OpTimeout)
			err := conn.Retarget(rctx, []string{next})
			c()
			if err == nil {
				n.log.Info("baton: redis endpoint moved", "service", service, "from", current, "to", next)
				current = next
				break
			}
			n.log.Warn("baton: redis endpoint moved but does not answer yet", "service", service, "addr", next, "err", err)
			select {
			case <-life.Done():
				return
			case <-time.After(backoff.Delay(attempt)):
			}
		}
	}
}

// pickAddress chooses the instance with the highest weight, then the lowest
// ID, so every node picks the same one.
func pickAddress(view map[string]backends.ServiceInfo) string {
	var best *backends.ServiceInfo
	for _, s := range view {
		s := s
		if best == nil || s.Weight > best.Weight || (s.Weight == best.Weight && s.ID < best.ID) {
			best = &s
		}
	}
	if best == nil {
		return ""
	}
	return best.Address
}
