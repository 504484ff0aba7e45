package redis

import (
	"context"
	"crypto/rand"
	_ "embed" // Lua scripts
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

var (
	//go:embed elect_campaign.lua
	electCampaignSrc string
	//go:embed elect_renew.lua
	electRenewSrc string
	//go:embed elect_resign.lua
	electResignSrc string

	electCampaignScript = goredis.NewScript(fenceCommonLua + electCampaignSrc)
	electRenewScript    = goredis.NewScript(electRenewSrc)
	electResignScript   = goredis.NewScript(electResignSrc)
)

// electionStore is the Elector NewElector returns.
type electionStore struct {
	conn *Connector
	ns   backends.Namespace
	ttl  time.Duration
	hub  *lockHub
	log  *slog.Logger

	terms holdings[*leadership]
}

var (
	_ backends.Elector    = (*electionStore)(nil)
	_ backends.Leadership = (*leadership)(nil)
)

// NewElector returns an Elector on conn (TTL default 10s). The leader key
// holds "<candidate id>|<epoch>|<value>" with a PX TTL the leader renews at
// TTL/3; the epoch comes from a per-election counter bumped by the script
// that takes leadership.
func NewElector(conn *Connector, opts backends.ElectorOptions) (backends.Elector, error) {
	s, err := newElectionStore(conn, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newElectionStore is NewElector with the concrete type, for this package's tests.
func newElectionStore(conn *Connector, opts backends.ElectorOptions) (*electionStore, error) {
	if conn == nil {
		return nil, backends.Invalid("connector", "nil", "must not be nil")
	}
	ns := opts.Namespace.WithDefaults()
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	if err := backends.ValidateTTL("ttl", opts.TTL); err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = backends.DefaultElectionTTL
	}
	ttl = pxTTL(ttl)
	if ttl < 3*time.Millisecond {
		return nil, backends.Invalid("ttl", opts.TTL, "must be at least 3ms")
	}
	e := &electionStore{conn: conn, ns: ns, ttl: ttl, log: conn.Logger()}
	e.terms.init()
	e.hub = newLockHub(conn, channelPattern(ns, backends.ComponentElection))
	return e, nil
}

// electKeys returns the keys and channel of one election; the {hash tag}
// keeps leader key and epoch counter in one Redis Cluster slot.
func (e *electionStore) electKeys(election string) (leader, epoch, channel string) {
	p := e.ns.Prefix(backends.ComponentElection, lockHashTag(election))
	return p + "leader", p + "epoch", p + "events"
}

func electClosedErr(op string) error {
	return fmt.Errorf("redis: election %s: %w", op, backends.ErrClosed)
}

// electFallback is how long a candidate or observer waits without a
// notification: until the current leader key would expire, but at most
// TTL/4, jittered by ±10%. Take-over and resign publish; expiry does not,
// which is what this bound catches.
func (e *electionStore) electFallback(pttl time.Duration) time.Duration {
	d := e.ttl / 4
	if pttl >= 0 && pttl+time.Millisecond < d { // 0: under a millisecond left
		d = pttl + time.Millisecond
	}
	return max(jitter(d, 0.1), time.Millisecond)
}

// Campaign blocks until this candidate leads election, ctx ends (the error
// wraps ctx.Err()) or the Elector is closed. Candidates are not served in
// FIFO order.
func (e *electionStore) Campaign(ctx context.Context, election, value string) (backends.Leadership, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return nil, err
	}
	if err := backends.ValidateValue([]byte(value), 0); err != nil {
		return nil, err
	}
	if e.terms.isClosed() {
		return nil, electClosedErr("campaign")
	}
	leaderKey, epochKey, channel := e.electKeys(election)
	id := rand.Text()
	w := e.hub.watch(channel)
	defer w.stop()
	op := fmt.Sprintf("redis: election %q campaign", election)
	for {
		if err := e.hub.ensure(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", op, ctx.Err())
			}
			return nil, err
		}
		cl, err := e.conn.client()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		res, err := electCampaignScript.Run(ctx, cl, []string{leaderKey, epochKey},
			id, value, e.ttl.Milliseconds(), channel).Int64Slice()
		if err != nil {
			if replyLost(err) {
				// Leadership may have been granted with the reply lost, or
				// may still be (a stalled server runs the script later).
				e.terms.giveBackLater(e.conn, e.log, "redis election", electResignScript, leaderKey, id, channel)
			}
			if cerr := ctxErr(ctx); cerr != nil {
				return nil, fmt.Errorf("%s: %w", op, cerr)
			}
			return nil, mapErr(op, err)
		}
		if len(res) != 2 {
			return nil, fmt.Errorf("%s: unexpected script reply %v", op, res)
		}
		if res[0] > 0 {
			return e.startTerm(cl, election, value, id, uint64(res[0]), start)
		}
		switch w.wait(ctx, e.terms.closing, e.electFallback(time.Duration(res[1])*time.Millisecond)) {
		case wakeCtx:
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		case wakeClosed:
			return nil, electClosedErr("campaign")
		}
	}
}

func (e *electionStore) electAbandon(cl goredis.UniversalClient, leaderKey, id, channel string) {
	giveBackNow(e.log, "redis election", electResignScript, cl, leaderKey, id, channel)
}

func (e *electionStore) startTerm(cl goredis.UniversalClient, election, value, id string, epoch uint64, start time.Time) (*leadership, error) {
	leaderKey, _, channel := e.electKeys(election)
	ld := &leadership{
		e: e, election: election, value: value, id: id, epoch: epoch,
		leaderKey: leaderKey, channel: channel, expiry: expiry{done: make(chan struct{})},
	}
	if !e.terms.add(ld, e.ttl, start, ld.renew) {
		e.electAbandon(cl, leaderKey, id, channel)
		return nil, electClosedErr("campaign")
	}
	return ld, nil
}

// Leader returns the current leader, or ErrNotFound.
func (e *electionStore) Leader(ctx context.Context, election string) (backends.LeaderInfo, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return backends.LeaderInfo{}, err
	}
	if e.terms.isClosed() {
		return backends.LeaderInfo{}, electClosedErr("leader")
	}
	info, _, err := e.electRead(ctx, election)
	return info, err
}

// electRead returns the leader and the remaining TTL of its key.
func (e *electionStore) electRead(ctx context.Context, election string) (backends.LeaderInfo, time.Duration, error) {
	none := backends.LeaderInfo{Election: election}
	cl, err := e.conn.client()
	if err != nil {
		return none, 0, err
	}
	leaderKey, _, _ := e.electKeys(election)
	pipe := cl.Pipeline()
	get := pipe.Get(ctx, leaderKey)
	pttl := pipe.PTTL(ctx, leaderKey)
	_, _ = pipe.Exec(ctx)
	op := fmt.Sprintf("redis: election %q leader", election)
	raw, err := get.Result()
	if err != nil {
		return none, 0, mapErr(op, err)
	}
	info, ok := parseLeader(election, raw)
	if !ok {
		return none, 0, fmt.Errorf("%s: malformed leader record", op)
	}
	return info, pttl.Val(), nil
}

// parseLeader splits "<id>|<epoch>|<value>".
func parseLeader(election, raw string) (backends.LeaderInfo, bool) {
	parts := strings.SplitN(raw, "|", 3)
	if len(parts) != 3 {
		return backends.LeaderInfo{}, false
	}
	epoch, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return backends.LeaderInfo{}, false
	}
	return backends.LeaderInfo{Election: election, Value: parts[2], Epoch: epoch}, true
}

// Observe sends the current leader (if any), then every change until ctx
// ends or the Elector closes; then the channel is closed. Changes are
// noticed through the take-over/resign notifications, and expiries within
// TTL/4. A slow reader may miss intermediate leaders: it always receives
// the latest one.
func (e *electionStore) Observe(ctx context.Context, election string) (<-chan backends.LeaderInfo, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return nil, err
	}
	if !e.terms.track() {
		return nil, electClosedErr("observe")
	}
	_, _, channel := e.electKeys(election)
	w := e.hub.watch(channel)
	if err := e.hub.ensure(ctx); err != nil {
		w.stop()
		e.terms.wg.Done()
		return nil, err
	}
	out := make(chan backends.LeaderInfo, 1)
	go e.observe(ctx, election, w, out)
	return out, nil
}

func (e *electionStore) observe(ctx context.Context, election string, w *hubWaiter, out chan<- backends.LeaderInfo) {
	defer e.terms.wg.Done()
	defer close(out)
	defer w.stop()
	last := backends.LeaderInfo{Election: election}
	for {
		// Keeps the subscription alive across reconnects of the connector;
		// failures only mean we rely on the fallback for a while.
		_ = e.hub.ensure(ctx)
		info, pttl, err := e.electRead(ctx, election)
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			if info != last {
				select {
				case out <- info:
					last = info
				case <-ctx.Done():
					return
				case <-e.terms.closing:
					return
				}
			}
		} else {
			e.log.Debug("redis election: observe read failed", "election", election, "err", err)
		}
		if err != nil {
			pttl = -1 // no leader key (or no answer): nothing to time the fallback by
		}
		if w.wait(ctx, e.terms.closing, e.electFallback(pttl)) != wakeRetry {
			return
		}
	}
}

// Close stops renewals and observers, resigns every leadership still held
// (best effort, bounded), and wakes blocked Campaign calls with ErrClosed.
// It does not disconnect the Connector.
func (e *electionStore) Close() error {
	e.terms.close(e.hub, e.conn)
	return nil
}

// leadership is one term of leadership.
type leadership struct {
	e                   *electionStore
	election, value, id string
	leaderKey, channel  string
	epoch               uint64
	expiry
}

func (ld *leadership) Election() string      { return ld.election }
func (ld *leadership) Value() string         { return ld.value }
func (ld *leadership) Epoch() uint64         { return ld.epoch }
func (ld *leadership) Done() <-chan struct{} { return ld.done }

func (ld *leadership) end() {
	ld.finish()
	ld.e.terms.remove(ld)
}

// Resign deletes the leader key if it is still ours and notifies candidates
// and observers. ErrNotHeld when leadership was already lost.
func (ld *leadership) Resign(ctx context.Context) error {
	return ld.e.terms.release(ctx, ld.e.conn, ld, electClosedErr("resign"), fmt.Sprintf("redis: election %q resign", ld.election))
}

func (ld *leadership) giveBack(ctx context.Context, cl goredis.UniversalClient) *goredis.Cmd {
	return electResignScript.Run(ctx, cl, []string{ld.leaderKey}, ld.id, ld.channel)
}

// renew extends the leader key every TTL/3. A renewal that finds the key
// gone or someone else's ends the term at once; failures to reach Redis are
// retried until the local expiry timer ends the term.
func (ld *leadership) renew() {
	ttl := ld.e.ttl
	every := max(ttl/3, time.Millisecond)
	for {
		if !pause(every, ld.done, ld.e.terms.closing) {
			return
		}
		cl, err := ld.e.conn.client()
		if err != nil {
			ld.e.log.Debug("redis election: renew failed", "election", ld.election, "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		start := time.Now()
		ok, err := electRenewScript.Run(ctx, cl, []string{ld.leaderKey}, ld.id, ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err != nil:
			ld.e.log.Debug("redis election: renew failed", "election", ld.election, "err", err)
		case ok != 1:
			ld.e.log.Debug("redis election: leadership lost", "election", ld.election, "epoch", ld.epoch)
			ld.end()
			return
		default:
			ld.mu.Lock()
			if !ld.ended {
				ld.timer.Reset(ttl - time.Since(start))
			}
			ld.mu.Unlock()
		}
	}
}
