package history_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/internal/history"
)

// TestResourceFences: a write is accepted iff its token is at least the
// highest accepted for its lock, and every decision is recorded.
func TestResourceFences(t *testing.T) {
	res, err := history.StartResource()
	require.NoError(t, err)
	defer func() { require.NoError(t, res.Close()) }()
	require.Contains(t, res.URL(), "http://127.0.0.1:")

	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	writes := []struct {
		w    history.Write
		want bool
	}{
		{history.Write{Process: "a", Lock: "L", Lease: "a/1", Token: 5}, true},
		{history.Write{Process: "a", Lock: "L", Lease: "a/1", Token: 5}, true}, // the same holder again
		{history.Write{Process: "b", Lock: "L", Lease: "b/1", Token: 4}, false},
		{history.Write{Process: "b", Lock: "M", Lease: "b/2", Token: 1}, true}, // another lock
		{history.Write{Process: "c", Lock: "L", Lease: "c/1", Token: 9}, true},
		{history.Write{Process: "a", Lock: "L", Lease: "a/1", Token: 5}, false},
	}
	for _, w := range writes {
		ok, err := history.WriteTo(t.Context(), c, res.URL(), w.w)
		require.NoError(t, err)
		assert.Equal(t, w.want, ok, "%+v", w.w)
	}
	events := res.Events()
	require.Len(t, events, len(writes))
	for i, e := range events {
		want := history.WriteRejected
		if writes[i].want {
			want = history.WriteAccepted
		}
		assert.Equal(t, want, e.Kind)
		assert.Equal(t, writes[i].w.Lease, e.Lease)
		assert.Equal(t, writes[i].w.Token, e.Token)
		assert.Equal(t, writes[i].w.Process, e.Process)
		if i > 0 {
			assert.GreaterOrEqual(t, e.Time, events[i-1].Time, "decision order")
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, res.URL()+"/write", http.NoBody)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Len(t, res.Events(), len(writes), "a malformed write is not recorded")
}
