package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNodeProcess: a node process answers commands, a paused one answers
// nothing until it resumes, and a killed one is gone.
func TestNodeProcess(t *testing.T) {
	t.Setenv("BATON_TEST_CONTAINERS", "") // a local redis-server
	rds := StartRedis(t)
	p := StartNodeProcess(t, "harness-node", "-name", "harness-node-test", "-redis", rds.URL())
	assert.Positive(t, p.Pid())

	p.Send("ping p1")
	p.Await(0, "pong p1", 10*time.Second)

	p.Pause()
	mark := p.Mark()
	p.Send("ping p2")
	_, answered := p.Find(mark, "pong p2", 300*time.Millisecond)
	require.False(t, answered, "a paused node answered")
	p.Resume()
	p.Await(mark, "pong p2", 10*time.Second)

	p.Kill()
	_, answered = p.Find(p.Mark(), "pong", 100*time.Millisecond)
	assert.False(t, answered)
	p.Stop() // no-op on an ended process
}
