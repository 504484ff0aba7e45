package bind_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/bind"
)

// tick is the polling interval of bounded waits.
const tick = 20 * time.Millisecond

// TestBind runs the cases the config conformance suite ran for every
// implementation until Bind became a package of its own. They read and
// watch only through the ConfigCenter interface, so they run once, against
// one real Redis; the subtest names are the former case names.
func TestBind(t *testing.T) {
	t.Run("bind-valid-and-invalid-update", func(t *testing.T) { bindUpdates(t, freshConfig(t)) })
	t.Run("bind-document", func(t *testing.T) { bindDocument(t, freshConfig(t)) })
}

// bindSettings is the struct the cases decode into.
type bindSettings struct {
	Host    string        `yaml:"host"`
	Port    int           `yaml:"port"`
	Timeout time.Duration `yaml:"timeout"`
	Tags    []string      `yaml:"tags"`
	DB      struct {
		User string `yaml:"user"`
		Pool int    `yaml:"pool"`
	} `yaml:"db"`
}

var errBadPort = errors.New("port out of range")

func validateSettings(v bindSettings) error {
	if v.Port < 1 || v.Port > 65535 {
		return fmt.Errorf("%w: %d", errBadPort, v.Port)
	}
	if v.Host == "" {
		return errors.New("host is required")
	}
	return nil
}

// bindRecorder collects OnChange and OnError calls.
type bindRecorder struct {
	mu      sync.Mutex
	changes [][2]bindSettings
	errs    []error
}

func (r *bindRecorder) options() bind.Options[bindSettings] {
	return bind.Options[bindSettings]{
		Validate: validateSettings,
		OnChange: func(old, updated bindSettings) {
			r.mu.Lock()
			r.changes = append(r.changes, [2]bindSettings{old, updated})
			r.mu.Unlock()
		},
		OnError: func(err error) {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		},
	}
}

func (r *bindRecorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.changes), len(r.errs)
}

func bindUpdates(t *testing.T, cc backends.ConfigCenter) {
	ctx := ctxFor(t, opTimeout)
	for k, v := range map[string]string{
		"svc/host": "example.org", "svc/port": "8080", "svc/timeout": "5s",
		"svc/tags": `["a", "b"]`, "svc/db/user": "admin", "svc/db/pool": "4",
		"svcx/port": "1", // shares the spelling only
	} {
		setKey(t, cc, k, v)
	}
	rec := &bindRecorder{}
	b, err := bind.New(ctx, cc, "svc/", rec.options())
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })

	want := bindSettings{Host: "example.org", Port: 8080, Timeout: 5 * time.Second, Tags: []string{"a", "b"}}
	want.DB.User, want.DB.Pool = "admin", 4
	assert.Equal(t, want, b.Current(), "initial value")
	assert.Equal(t, "svc", b.Prefix())

	// A valid update is applied atomically and announced with old and new.
	setKey(t, cc, "svc/port", "9090")
	require.Eventually(t, func() bool { return b.Current().Port == 9090 }, opTimeout, tick, "valid update not applied")
	rec.mu.Lock()
	require.Len(t, rec.changes, 1)
	assert.Equal(t, 8080, rec.changes[0][0].Port, "old value")
	assert.Equal(t, 9090, rec.changes[0][1].Port, "new value")
	assert.Equal(t, want.Host, rec.changes[0][1].Host, "untouched fields keep their value")
	rec.mu.Unlock()

	// An update the validator rejects is never installed.
	setKey(t, cc, "svc/port", "0")
	require.Eventually(t, func() bool { _, n := rec.counts(); return n >= 1 }, opTimeout, tick, "invalid update not reported")
	rec.mu.Lock()
	assert.ErrorIs(t, rec.errs[0], errBadPort, "the validator's error is passed on")
	assert.ErrorIs(t, rec.errs[0], backends.ErrInvalidArgument)
	rec.mu.Unlock()
	assert.Equal(t, 9090, b.Current().Port, "the previous value stays")

	// So is one that does not decode.
	setKey(t, cc, "svc/port", "not-a-number")
	require.Eventually(t, func() bool { _, n := rec.counts(); return n >= 2 }, opTimeout, tick, "undecodable update not reported")
	assert.Equal(t, 9090, b.Current().Port, "the previous value stays")
	changes, _ := rec.counts()
	assert.Equal(t, 1, changes, "rejected updates are not announced")

	// The next valid update starts from the last good value.
	setKey(t, cc, "svc/port", "7070")
	require.Eventually(t, func() bool { return b.Current().Port == 7070 }, opTimeout, tick, "valid update after rejected ones not applied")
	rec.mu.Lock()
	require.Len(t, rec.changes, 2)
	assert.Equal(t, 9090, rec.changes[1][0].Port, "old value is the last good one")
	rec.mu.Unlock()

	// Deleting a key resets its field.
	delKey(t, cc, "svc/db/pool")
	require.Eventually(t, func() bool { return b.Current().DB.Pool == 0 }, opTimeout, tick, "delete not applied")
	assert.Equal(t, "admin", b.Current().DB.User)
	assert.Positive(t, b.Version())

	// Initially invalid configuration: Bind fails with the validator's error.
	setKey(t, cc, "bad/port", "0")
	setKey(t, cc, "bad/host", "h")
	_, err = bind.New(ctx, cc, "bad", bind.Options[bindSettings]{Validate: validateSettings})
	assert.ErrorIs(t, err, errBadPort)
	assert.ErrorIs(t, err, backends.ErrInvalidArgument)
	_, err = bind.New(ctx, cc, "", bind.Options[bindSettings]{})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "empty prefix")

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "close is idempotent")
	assert.Equal(t, 7070, b.Current().Port, "the value survives Close")
}

func bindDocument(t *testing.T, cc backends.ConfigCenter) {
	ctx := ctxFor(t, opTimeout)
	setKey(t, cc, "doc", "host: from-doc\nport: 1000\ndb:\n  user: doc-user\n  pool: 2\n")
	setKey(t, cc, "doc/port", "2000") // a field key overrides the document
	rec := &bindRecorder{}
	b, err := bind.New(ctx, cc, "doc", rec.options())
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	want := bindSettings{Host: "from-doc", Port: 2000}
	want.DB.User, want.DB.Pool = "doc-user", 2
	assert.Equal(t, want, b.Current())

	// A JSON document replaces the YAML one; the field key still wins.
	setKey(t, cc, "doc", `{"host": "json-host", "port": 1, "db": {"user": "u"}}`)
	want = bindSettings{Host: "json-host", Port: 2000}
	want.DB.User = "u"
	require.Eventually(t, func() bool { return b.Current().Host == "json-host" }, opTimeout, tick, "document update not applied")
	assert.Equal(t, want, b.Current())

	delKey(t, cc, "doc/port")
	require.Eventually(t, func() bool { return b.Current().Port == 1 }, opTimeout, tick, "field key removal not applied")

	// A document that is not a mapping is rejected, the value stays.
	setKey(t, cc, "doc", "- just\n- a list\n")
	require.Eventually(t, func() bool { _, n := rec.counts(); return n >= 1 }, opTimeout, tick, "bad document not reported")
	assert.Equal(t, "json-host", b.Current().Host)

	// Strict binding refuses keys that match no field.
	setKey(t, cc, "strict/host", "h")
	setKey(t, cc, "strict/port", "1")
	setKey(t, cc, "strict/unknown", "x")
	_, err = bind.New(ctx, cc, "strict", bind.Options[bindSettings]{Strict: true})
	assert.ErrorIs(t, err, backends.ErrInvalidArgument, "strict with an unknown key")
	lax, err := bind.New(ctx, cc, "strict", bind.Options[bindSettings]{})
	require.NoError(t, err, "non-strict ignores unknown keys")
	assert.Equal(t, "h", lax.Current().Host)
	require.NoError(t, lax.Close())
}
