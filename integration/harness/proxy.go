package harness

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyChunk is the largest piece of a stream the proxy reads before it forwards it; latency
// is added once per piece.
const proxyChunk = 32 << 10

// proxyDialTimeout bounds the proxy's connection to its target.
const proxyDialTimeout = 2 * time.Second

// Proxy is a TCP proxy on a loopback port that forwards every connection to one target, for
// network faults without root: put it between a client and its server and it can slow the
// traffic down (SetLatency), cut it off while keeping the connections open (Blackhole), or
// break every connection at once (Reset).
//
//	rds := harness.StartRedis(t)
//	px := harness.StartProxy(t, rds.Addr())
//	client := redis.NewClient(&redis.Options{Addr: px.Addr()})
//	px.Blackhole(true)  // calls stall until their deadline: a partition
//	px.Blackhole(false) // what was held back is delivered: the partition heals
//	px.Reset()          // every open connection gets a TCP RST
//
// Its methods are safe to call from any goroutine. StartProxy registers Close as a cleanup.
type Proxy struct {
	target  string
	ln      net.Listener
	latency atomic.Int64 // time.Duration added to each chunk in each direction
	done    chan struct{}
	wg      sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	healed chan struct{} // nil while traffic flows; closed when a blackhole ends
	conns  map[*proxyConn]struct{}
	closed bool
}

// proxyConn is one proxied connection: the client's side and the target's.
type proxyConn struct {
	client, server *net.TCPConn
	once           sync.Once
	gone           chan struct{} // closed when either side is closed
}

// StartProxy listens on a free 127.0.0.1 port and forwards each accepted connection to target
// ("host:port"; a loopback address in this repository's tests). It fails the test when it
// cannot listen. A target that refuses the proxy's dial gets the client's connection closed:
// to the client, the server is down.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := LaunchProxy(target)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// LaunchProxy is StartProxy for programs without a testing.TB: the caller must call Close.
func LaunchProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("harness: proxy: %w", err)
	}
	p := &Proxy{target: target, ln: ln, done: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's address, "127.0.0.1:port": give it to the client instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays every chunk of data by d in each direction (so a request and its reply
// take at least 2d longer), for connections open now and later. Zero turns it off.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Blackhole with on=true stops forwarding: connections, open and new, stay open and what is
// sent is read and held, but nothing reaches the other side — to both peers the network has
// gone quiet, as in a partition, and only their own timeouts end their wait. Blackhole(false)
// delivers what was held, in order, and forwards again. Calling it twice with the same value
// does nothing.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.healed == nil:
		p.healed = make(chan struct{})
	case !on && p.healed != nil:
		close(p.healed)
		p.healed = nil
	}
}

// Reset breaks every connection open now: both of its sides are closed with SO_LINGER 0, so
// the client and the server each get a TCP RST ("connection reset by peer") instead of an
// orderly close. New connections are accepted as before. It returns how many it reset.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
	return len(conns)
}

// Conns is the number of connections open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, resets every open connection and waits until every goroutine of
// the proxy has returned. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	if p.healed != nil {
		close(p.healed)
		p.healed = nil
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.Reset()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // the listener is broken; Close reaps what is left
		}
		p.wg.Go(func() { p.serve(c.(*net.TCPConn)) })
	}
}

// serve dials the target for one accepted client connection and copies both ways until
// either side ends.
func (p *Proxy) serve(client *net.TCPConn) {
	d := net.Dialer{Timeout: proxyDialTimeout}
	up, err := d.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close() // the target is down: so it looks to the client
		return
	}
	c := &proxyConn{client: client, server: up.(*net.TCPConn), gone: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.reset()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(c, c.server, c.client) })
	wg.Go(func() { p.pipe(c, c.client, c.server) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe copies from src to dst chunk by chunk, holding each chunk while a blackhole lasts and
// for the latency, and closes the connection when src ends or dst fails.
func (p *Proxy) pipe(c *proxyConn, dst, src *net.TCPConn) {
	defer c.close()
	buf := make([]byte, proxyChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.hold(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits for the latency and until no blackhole is on; false when the connection went
// away meanwhile.
func (p *Proxy) hold(c *proxyConn) bool {
	if d := time.Duration(p.latency.Load()); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-c.gone:
			timer.Stop()
			return false
		}
	}
	for {
		p.mu.Lock()
		healed := p.healed
		p.mu.Unlock()
		if healed == nil {
			return true
		}
		select {
		case <-healed:
		case <-c.gone:
			return false
		}
	}
}

// close ends both sides with an orderly close (FIN): one side ended, so the other must too.
func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.gone)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// reset ends both sides with RST.
func (c *proxyConn) reset() {
	c.once.Do(func() {
		close(c.gone)
		for _, s := range []*net.TCPConn{c.client, c.server} {
			_ = s.SetLinger(0)
			_ = s.Close()
		}
	})
}
