package runtime_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/harness"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	"github.com/baton-go/baton/runtime"
)

// logRecorder is a slog.Handler that keeps every record, for tests that
// check what a node reports.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	attrs   []slog.Attr
	shared  *logRecorder
}

func newLogRecorder() *logRecorder { r := &logRecorder{}; r.shared = r; return r }

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	r.shared.records = append(r.shared.records, rec)
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr(nil), r.attrs...), as...), shared: r.shared}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// find returns the text of the records at level or above whose message
// or attributes contain sub.
func (r *logRecorder) find(level slog.Level, sub string) []string {
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	var out []string
	for _, rec := range r.shared.records {
		if rec.Level < level {
			continue
		}
		var b strings.Builder
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		if strings.Contains(b.String(), sub) {
			out = append(out, rec.Level.String()+" "+b.String())
		}
	}
	return out
}

// TestStopIsIdempotent: a second Stop, and a Stop after a Start that
// failed, return nil, as a deferred Stop after an explicit one expects.
func TestStopIsIdempotent(t *testing.T) {
	e := harness.StartEtcd(t)
	node, err := runtime.New(runtime.Spec{Env: "test", Etcd: etcdConfig(e)})
	require.NoError(t, err)
	require.NoError(t, node.Start(ctxFor(t, 30*time.Second)))
	require.NoError(t, node.Stop(context.Background()))
	require.NoError(t, node.Stop(context.Background()), "a second Stop")
	require.ErrorIs(t, node.Start(context.Background()), backends.ErrClosed, "Start after Stop")

	never, err := runtime.New(runtime.Spec{Env: "test", Etcd: etcdConfig(e)})
	require.NoError(t, err)
	require.NoError(t, never.Stop(context.Background()), "Stop before Start")
	require.ErrorIs(t, never.Start(context.Background()), backends.ErrClosed, "Start after a Stop")
}

// TestStopWithBackendGone stops a node whose only backend was killed while
// it held a registration, a lock and a leadership: Stop returns nil within
// its bound, and says in the log what it could not undo (the registration
// expires with its TTL).
func TestStopWithBackendGone(t *testing.T) {
	e := harness.StartEtcdProcess(t)
	logs := newLogRecorder()
	node, err := runtime.New(runtime.Spec{Env: "test", NodeID: "gone", Etcd: etcdConfig(e)},
		runtime.WithLogger(slog.New(logs)))
	require.NoError(t, err)
	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, node.Start(ctx))

	require.NoError(t, node.Discovery().Register(ctx, backends.ServiceInfo{ID: "api-1", Name: "api", Address: "127.0.0.1:8080"}, 5*time.Second))
	_, err = node.Locks().Acquire(ctx, "held", backends.LockOptions{TTL: 5 * time.Second, AutoRenew: true})
	require.NoError(t, err)
	_, err = node.Election().Campaign(ctx, "lead", "me")
	require.NoError(t, err)
	require.NoError(t, node.Cache("c").Set(ctx, "k", []byte("v"), 0))

	e.Stop()
	start := time.Now()
	err = node.Stop(ctxFor(t, 30*time.Second))
	took := time.Since(start)
	t.Logf("Stop took %v", took)
	require.NoError(t, err)
	assert.Less(t, took, 20*time.Second)
	warned := logs.find(slog.LevelWarn, "api-1")
	assert.NotEmpty(t, warned, "the registration left behind is reported")
	for _, l := range warned {
		t.Log(l)
	}
	require.NoError(t, node.Stop(context.Background()), "a second Stop")
}

// TestStartRefusedCredentials: a node whose password the server refuses
// fails Start at once with ErrUnauthenticated (not ErrUnavailable after
// its whole context), and a database index the server lacks with
// ErrInvalidArgument naming redis.db.
func TestStartRefusedCredentials(t *testing.T) {
	r := harness.StartRedis(t, harness.WithRedisPassword("secret"))
	for name, tc := range map[string]struct {
		password string
		db       int
		is       error
	}{
		"wrong password": {"wrong", 0, backends.ErrUnauthenticated},
		"no password":    {"", 0, backends.ErrUnauthenticated},
		"bad db index":   {"secret", 999, backends.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			rc := redisConfig(r)
			rc.Password, rc.DB = tc.password, tc.db
			node, err := runtime.New(runtime.Spec{Env: "test", Redis: rc})
			require.NoError(t, err)
			began := time.Now()
			err = node.Start(ctxFor(t, 10*time.Second))
			require.ErrorIs(t, err, tc.is)
			assert.NotErrorIs(t, err, backends.ErrUnavailable)
			assert.Less(t, time.Since(began), 2*time.Second)
			t.Logf("%s: %v", name, err)
			require.NoError(t, node.Stop(context.Background()))
		})
	}
}

// TestPIDs: PIDs addresses every component actor while the node runs, and
// is empty before Start and after Stop.
func TestPIDs(t *testing.T) {
	e := harness.StartEtcd(t)
	node, err := runtime.New(runtime.Spec{Env: "test", Etcd: etcdConfig(e)})
	require.NoError(t, err)
	assert.Equal(t, runtime.ComponentPIDs{}, node.PIDs(), "before Start")
	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, node.Start(ctx))
	pids := node.PIDs()
	for name, pid := range map[string]*actor.PID{"connectors": pids.Connectors, "cache": pids.Cache,
		"lock": pids.Lock, "election": pids.Election, "discovery": pids.Discovery, "config": pids.Config} {
		assert.NotNil(t, pid, name)
	}
	_, err = actors.Request[*cachev1.SetResponse](ctx, node.ActorSystem().Root, pids.Cache,
		&cachev1.SetRequest{Name: "pids", Key: "k", Value: []byte("v")})
	require.NoError(t, err)
	_, err = actors.Request[*configv1.GetResponse](ctx, node.ActorSystem().Root, pids.Config,
		&configv1.GetRequest{Key: "missing"})
	require.ErrorIs(t, err, backends.ErrNotFound)
	_, err = actors.Request[*electionv1.LeaderResponse](ctx, node.ActorSystem().Root, pids.Election,
		&electionv1.LeaderRequest{Election: "pids"})
	require.ErrorIs(t, err, backends.ErrNotFound)

	require.NoError(t, node.Stop(context.Background()))
	assert.Equal(t, runtime.ComponentPIDs{}, node.PIDs(), "after Stop")
	_, err = actors.Request[*cachev1.GetResponse](ctx, node.ActorSystem().Root, pids.Cache,
		&cachev1.GetRequest{Name: "pids", Key: "k"})
	require.ErrorIs(t, err, backends.ErrClosed, "a PID kept from before Stop")
}

// TestRegistrationObserver: a registration made through node.Discovery()
// is lost when its backend restarts empty; the observer hears of the loss
// and of the restoration, which the node makes by itself.
func TestRegistrationObserver(t *testing.T) {
	r := harness.StartRedis(t)
	events := make(chan backends.RegistrationEvent, 16)
	node := startNode(t, runtime.Spec{Env: "test", Redis: redisConfig(r)},
		runtime.WithRegistrationObserver(func(ev backends.RegistrationEvent) { events <- ev }))
	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, node.Discovery().Register(ctx, backends.ServiceInfo{ID: "api-1", Name: "api", Address: "127.0.0.1:8080"}, time.Second))

	r.Restart() // same port, no data: the registration is gone
	var got []backends.RegistrationState
	for len(got) < 2 {
		select {
		case ev := <-events:
			assert.Equal(t, "api-1", ev.ServiceID)
			got = append(got, ev.State)
		case <-ctx.Done():
			t.Fatalf("events so far: %v", got)
		}
	}
	assert.Equal(t, []backends.RegistrationState{backends.RegistrationLost, backends.RegistrationRestored}, got)
	require.Eventually(t, func() bool {
		list, err := node.Discovery().Discover(ctxFor(t, time.Second), "api")
		return err == nil && len(list) == 1
	}, 10*time.Second, 20*time.Millisecond, "registered again")
}

// TestFacadesAreShared: the facades are the node's, one per name; the
// config namespaces' end with the node.
func TestFacadesAreShared(t *testing.T) {
	e := harness.StartEtcd(t)
	node, err := runtime.New(runtime.Spec{Env: "test", Etcd: etcdConfig(e)})
	require.NoError(t, err)
	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, node.Start(ctx))
	assert.Same(t, node.Cache("a"), node.Cache("a"))
	assert.Same(t, node.Locks(), node.Locks())
	assert.Same(t, node.Discovery(), node.Discovery())
	def, err := node.ConfigWith(backends.ConfigOptions{Name: runtime.DefaultConfigName})
	require.NoError(t, err)
	assert.Same(t, node.Config(), def)
	app, err := node.ConfigWith(backends.ConfigOptions{Name: "app"})
	require.NoError(t, err)
	again, err := node.ConfigWith(backends.ConfigOptions{Name: "app"})
	require.NoError(t, err)
	assert.Same(t, app, again)
	_, err = node.ConfigWith(backends.ConfigOptions{Name: "app", Namespace: backends.Namespace{Env: "other"}})
	require.ErrorIs(t, err, backends.ErrInvalidArgument, "a standalone node serves only its own namespace")
	_, err = node.ConfigWith(backends.ConfigOptions{Name: "app", HistoryLimit: 3})
	require.ErrorIs(t, err, backends.ErrInvalidArgument)
	events, err := app.Watch(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, node.Stop(context.Background()))
	require.Eventually(t, func() bool {
		for {
			select {
			case _, open := <-events:
				if !open {
					return true
				}
			default:
				return false
			}
		}
	}, 5*time.Second, 10*time.Millisecond, "Stop ends the namespace facade's watches")
	_, err = app.Get(ctx, "k")
	require.ErrorIs(t, err, backends.ErrClosed)
}
