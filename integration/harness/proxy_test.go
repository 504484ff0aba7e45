package harness

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// respConn is a raw connection to a Redis server (through a proxy) that sends inline
// commands and reads one-line replies, so the test sees exactly what the socket does.
type respConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialResp(t *testing.T, addr string) *respConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &respConn{c: c, br: bufio.NewReader(c)}
}

// ping sends PING and waits up to d for the reply line.
func (r *respConn) ping(d time.Duration) (string, error) {
	if err := r.c.SetDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(r.c, "PING\r\n"); err != nil {
		return "", err
	}
	return r.read(d)
}

// read waits up to d for one reply line.
func (r *respConn) read(d time.Duration) (string, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	line, err := r.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-2], nil
}

func TestProxy(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // a local redis-server
	rds := StartRedis(t)

	t.Run("forwards", func(t *testing.T) {
		px := StartProxy(t, rds.Addr())
		assert.Regexp(t, `^127\.0\.0\.1:\d+$`, px.Addr())
		assert.Equal(t, rds.Addr(), px.Target())
		c := dialResp(t, px.Addr())
		reply, err := c.ping(time.Second)
		require.NoError(t, err)
		assert.Equal(t, "+PONG", reply)
		assert.Equal(t, 1, px.Conns())
	})

	t.Run("latency", func(t *testing.T) {
		px := StartProxy(t, rds.Addr())
		c := dialResp(t, px.Addr())
		_, err := c.ping(time.Second) // the connection is set up
		require.NoError(t, err)
		const latency = 100 * time.Millisecond
		px.SetLatency(latency)
		start := time.Now()
		reply, err := c.ping(5 * time.Second)
		took := time.Since(start)
		require.NoError(t, err)
		assert.Equal(t, "+PONG", reply)
		assert.GreaterOrEqual(t, took, 2*latency, "the request and the reply are each delayed")
		assert.Less(t, took, 2*latency+time.Second)

		px.SetLatency(0)
		start = time.Now()
		_, err = c.ping(time.Second)
		require.NoError(t, err)
		assert.Less(t, time.Since(start), latency, "latency off")
	})

	t.Run("blackhole", func(t *testing.T) {
		px := StartProxy(t, rds.Addr())
		before := dialResp(t, px.Addr())
		_, err := before.ping(time.Second)
		require.NoError(t, err)

		px.Blackhole(true)
		px.Blackhole(true) // no-op
		_, err = before.ping(300 * time.Millisecond)
		requireTimeout(t, err, "an open connection answered through the blackhole")

		// A new connection is accepted, but nothing comes back either.
		during := dialResp(t, px.Addr())
		_, err = during.ping(300 * time.Millisecond)
		requireTimeout(t, err, "a new connection answered through the blackhole")

		// Healing delivers what was held: each connection gets the PONG
		// of its PING.
		px.Blackhole(false)
		for _, c := range []*respConn{before, during} {
			reply, err := c.read(2 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, "+PONG", reply)
		}
		reply, err := before.ping(time.Second)
		require.NoError(t, err)
		assert.Equal(t, "+PONG", reply)
	})

	t.Run("reset", func(t *testing.T) {
		px := StartProxy(t, rds.Addr())
		c := dialResp(t, px.Addr())
		_, err := c.ping(time.Second)
		require.NoError(t, err)

		assert.Equal(t, 1, px.Reset())
		_, err = c.read(2 * time.Second)
		require.ErrorIs(t, err, syscall.ECONNRESET, "a reset connection must see an RST, not a timeout or an orderly close")
		require.Eventually(t, func() bool { return px.Conns() == 0 }, 2*time.Second, 10*time.Millisecond)

		fresh := dialResp(t, px.Addr())
		reply, err := fresh.ping(time.Second)
		require.NoError(t, err, "new connections work after a reset")
		assert.Equal(t, "+PONG", reply)
	})

	t.Run("target down", func(t *testing.T) {
		down := StartRedis(t)
		px := StartProxy(t, down.Addr())
		down.Stop()
		c := dialResp(t, px.Addr())
		_, err := c.ping(2 * time.Second)
		require.Error(t, err)
		assert.False(t, isTimeout(err), "the client of a proxy to a dead server is disconnected, not left waiting: %v", err)
	})

	t.Run("close", func(t *testing.T) {
		px, err := LaunchProxy(rds.Addr())
		require.NoError(t, err)
		c := dialResp(t, px.Addr())
		_, err = c.ping(time.Second)
		require.NoError(t, err)
		px.Blackhole(true) // Close must not wait for a blackhole to end
		require.NoError(t, px.Close())
		require.NoError(t, px.Close(), "a second Close does nothing")
		_, err = c.read(time.Second)
		require.Error(t, err)
		requireRefused(t, px.Addr())
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func requireTimeout(t *testing.T, err error, msg string) {
	t.Helper()
	require.Error(t, err, msg)
	require.True(t, isTimeout(err), "%s: want a timeout, got %v", msg, err)
}
