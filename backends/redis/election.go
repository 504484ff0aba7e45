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
	"sync"
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

	electCampaignScript = goredis.NewScript(electCampaignSrc)
	electRenewScript    = goredis.NewScript(electRenewSrc)
	electResignScript   = goredis.NewScript(electResignSrc)
)

// Elector is a backends.Elector on Redis. The leader key holds
// "<candidate id>|<epoch>|<value>" with a PX TTL that the leader renews at
// TTL/3; the epoch comes from a per-election counter bumped by the same
// script that takes leadership.
type Elector struct {
	conn *Connector
	ns   backends.Namespace
	ttl  time.Duration
	hub  *lockHub
	log  *slog.Logger

	closing chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	closed bool
	terms  map[*leadership]struct{}
}

var (
	_ backends.Elector    = (*Elector)(nil)
	_ backends.Closer     = (*Elector)(nil)
	_ backends.Leadership = (*leadership)(nil)
)

// NewElector returns an Elector on conn (TTL default 10s).
func NewElector(conn *Connector, opts backends.ElectorOptions) (*Elector, error) {
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
	e := &Elector{
		conn:    conn,
		ns:      ns,
		ttl:     ttl,
		log:     conn.Logger(),
		closing: make(chan struct{}),
		terms:   make(map[*leadership]struct{}),
	}
	e.hub = newLockHub(conn, channelPattern(ns, backends.ComponentElection))
	return e, nil
}

// electKeys returns the keys and channel of one election; the {hash tag}
// keeps leader key and epoch counter in one Redis Cluster slot.
func (e *Elector) electKeys(election string) (leader, epoch, channel string) {
	p := e.ns.Prefix(backends.ComponentElection, lockHashTag(election))
	return p + "leader", p + "epoch", p + "events"
}

func (e *Elector) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func electClosedErr(op string) error {
	return fmt.Errorf("redis: election %s: %w", op, backends.ErrClosed)
}

// electFallback is how long a candidate or observer waits without a
// notification: until the current leader key would expire, but at most
// TTL/4, jittered by ±10%. Take-over and resign publish; expiry does not,
// which is what this bound catches.
func (e *Elector) electFallback(pttl time.Duration) time.Duration {
	d := e.ttl / 4
	if pttl > 0 && pttl+time.Millisecond < d {
		d = pttl + time.Millisecond
	}
	return max(jitter(d, 0.1), time.Millisecond)
}

// Campaign blocks until this candidate leads election, ctx ends (the error
// wraps ctx.Err()) or the Elector is closed. Candidates are not served in
// FIFO order.
func (e *Elector) Campaign(ctx context.Context, election, value string) (backends.Leadership, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return nil, err
	}
	if err := backends.ValidateValue([]byte(value), 0); err != nil {
		return nil, err
	}
	if e.isClosed() {
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
			if ctx.Err() != nil {
				// Leadership may have been granted with the reply lost.
				e.electAbandon(cl, leaderKey, id, channel)
			}
			return nil, mapErr(op, err)
		}
		if len(res) != 2 {
			return nil, fmt.Errorf("%s: unexpected script reply %v", op, res)
		}
		if res[0] > 0 {
			return e.startTerm(cl, election, value, id, uint64(res[0]), start)
		}
		t := time.NewTimer(e.electFallback(time.Duration(res[1]) * time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		case <-e.closing:
			t.Stop()
			return nil, electClosedErr("campaign")
		case <-w.C:
			t.Stop()
		case <-t.C:
		}
	}
}

func (e *Elector) electAbandon(cl goredis.UniversalClient, leaderKey, id, channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), lockCleanupTimeout)
	defer cancel()
	if err := electResignScript.Run(ctx, cl, []string{leaderKey}, id, channel).Err(); err != nil {
		e.log.Debug("redis election: abandon failed", "key", leaderKey, "err", err)
	}
}

func (e *Elector) startTerm(cl goredis.UniversalClient, election, value, id string, epoch uint64, start time.Time) (*leadership, error) {
	leaderKey, _, channel := e.electKeys(election)
	ld := &leadership{
		e: e, election: election, value: value, id: id, epoch: epoch,
		leaderKey: leaderKey, channel: channel, done: make(chan struct{}),
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.electAbandon(cl, leaderKey, id, channel)
		return nil, electClosedErr("campaign")
	}
	e.terms[ld] = struct{}{}
	ld.mu.Lock()
	// Counted from before the request: Done closes no later than the key
	// can expire on the server.
	ld.timer = time.AfterFunc(e.ttl-time.Since(start), ld.end)
	ld.mu.Unlock()
	e.wg.Add(1)
	go ld.renew()
	e.mu.Unlock()
	return ld, nil
}

// Leader returns the current leader, or ErrNotFound.
func (e *Elector) Leader(ctx context.Context, election string) (backends.LeaderInfo, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return backends.LeaderInfo{}, err
	}
	if e.isClosed() {
		return backends.LeaderInfo{}, electClosedErr("leader")
	}
	info, _, err := e.electRead(ctx, election)
	return info, err
}

// electRead returns the leader and the remaining TTL of its key.
func (e *Elector) electRead(ctx context.Context, election string) (backends.LeaderInfo, time.Duration, error) {
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
func (e *Elector) Observe(ctx context.Context, election string) (<-chan backends.LeaderInfo, error) {
	if err := backends.ValidateName("election name", election); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, electClosedErr("observe")
	}
	e.wg.Add(1)
	e.mu.Unlock()
	_, _, channel := e.electKeys(election)
	w := e.hub.watch(channel)
	if err := e.hub.ensure(ctx); err != nil {
		w.stop()
		e.wg.Done()
		return nil, err
	}
	out := make(chan backends.LeaderInfo, 1)
	go e.observe(ctx, election, w, out)
	return out, nil
}

func (e *Elector) observe(ctx context.Context, election string, w *hubWaiter, out chan<- backends.LeaderInfo) {
	defer e.wg.Done()
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
				case <-e.closing:
					return
				}
			}
		} else {
			e.log.Debug("redis election: observe read failed", "election", election, "err", err)
		}
		t := time.NewTimer(e.electFallback(pttl))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.closing:
			t.Stop()
			return
		case <-w.C:
			t.Stop()
		case <-t.C:
		}
	}
}

// Close stops renewals and observers, resigns every leadership still held
// (best effort, bounded), and wakes blocked Campaign calls with ErrClosed.
// It does not disconnect the Connector.
func (e *Elector) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.closing)
	held := make([]*leadership, 0, len(e.terms))
	for ld := range e.terms {
		held = append(held, ld)
	}
	e.mu.Unlock()

	e.hub.close()
	if cl, err := e.conn.client(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), lockCleanupTimeout)
		for _, ld := range held {
			_ = electResignScript.Run(ctx, cl, []string{ld.leaderKey}, ld.id, ld.channel).Err()
		}
		cancel()
	}
	for _, ld := range held {
		ld.end()
	}
	e.wg.Wait()
	return nil
}

// leadership is one term of leadership.
type leadership struct {
	e                   *Elector
	election, value, id string
	leaderKey, channel  string
	epoch               uint64
	done                chan struct{}

	mu    sync.Mutex
	timer *time.Timer // local expiry: closes done
	ended bool
}

func (ld *leadership) Election() string      { return ld.election }
func (ld *leadership) Value() string         { return ld.value }
func (ld *leadership) Epoch() uint64         { return ld.epoch }
func (ld *leadership) Done() <-chan struct{} { return ld.done }

func (ld *leadership) end() {
	ld.mu.Lock()
	if !ld.ended {
		ld.ended = true
		close(ld.done)
		if ld.timer != nil {
			ld.timer.Stop()
		}
	}
	ld.mu.Unlock()
	ld.e.mu.Lock()
	delete(ld.e.terms, ld)
	ld.e.mu.Unlock()
}

// Resign deletes the leader key if it is still ours and notifies candidates
// and observers. ErrNotHeld when leadership was already lost.
func (ld *leadership) Resign(ctx context.Context) error {
	if ld.e.isClosed() {
		return electClosedErr("resign")
	}
	cl, err := ld.e.conn.client()
	if err != nil {
		return err
	}
	ok, err := electResignScript.Run(ctx, cl, []string{ld.leaderKey}, ld.id, ld.channel).Int()
	if err != nil {
		return mapErr(fmt.Sprintf("redis: election %q resign", ld.election), err)
	}
	ld.end()
	if ok != 1 {
		return fmt.Errorf("redis: election %q resign: %w", ld.election, backends.ErrNotHeld)
	}
	return nil
}

// renew extends the leader key every TTL/3. A renewal that finds the key
// gone or someone else's ends the term at once; failures to reach Redis are
// retried until the local expiry timer ends the term.
func (ld *leadership) renew() {
	defer ld.e.wg.Done()
	ttl := ld.e.ttl
	every := max(ttl/3, time.Millisecond)
	for {
		t := time.NewTimer(every)
		select {
		case <-ld.done:
			t.Stop()
			return
		case <-ld.e.closing:
			t.Stop()
			return
		case <-t.C:
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
