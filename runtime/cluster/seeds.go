package cluster

import (
	"context"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/baton-go/baton/backends"
)

// seedSource is a client-only node's view of the service: the discovery
// actor of a seed (or of any member it has learned of), over remoting.
// When that member stops answering, the next one takes over.
type seedSource struct {
	root   *actor.RootContext
	seeds  []string
	known  func() []Member
	dial   func(addr string) backends.ServiceDiscovery
	next   int
	closer func() // closes the last dialled client
}

func (s *seedSource) candidates() []string {
	out := slices.Clone(s.seeds)
	for _, m := range s.known() {
		if !slices.Contains(out, m.Address) && len(m.Kinds) > 0 {
			out = append(out, m.Address)
		}
	}
	return out
}

func (s *seedSource) open(ctx context.Context, service string) (<-chan backends.ServiceEvent, error) {
	if s.closer != nil {
		s.closer()
		s.closer = nil
	}
	cands := s.candidates()
	addr := cands[s.next%len(cands)]
	s.next++
	d := s.dial(addr)
	closeD := func() {
		if d != nil {
			_ = d.Close()
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	events, err := d.Watch(wctx, service)
	if err != nil {
		cancel()
		closeD()
		return nil, fmt.Errorf("seed %s: %w", addr, err)
	}
	// The seed's death ends the watch, so the next candidate is tried.
	stopWatch, err := deathWatch(s.root, pidOf(addr, discoveryActorName), cancel)
	if err != nil {
		cancel()
		closeD()
		return nil, err
	}
	s.closer = func() { stopWatch(); cancel(); closeD() }
	return events, nil
}

func (s *seedSource) close() {
	if s.closer != nil {
		s.closer()
		s.closer = nil
	}
}
