package redis

import (
	"context"
	_ "embed" // Lua scripts
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The config center and the discovery each keep a change log: a Redis
// stream whose entry IDs are "<seq>-0" and whose entries carry the log's
// epoch in field "e". A new epoch means the log started over (the server
// came back empty), so positions of different epochs do not compare. A
// watch follows such a log from its position and, when the log cannot
// continue from there (trimmed past it, or a new epoch), re-lists and sends
// the difference instead. This file holds what both watches share.

// logCommonLua keeps a log's epoch and sequence, and answers the probes of
// watches; every config and discovery script starts with it.
//
//go:embed log_common.lua
var logCommonLua string

// logScript builds a script of a component that keeps a change log: the
// shared log functions, the component's common functions, then body.
func logScript(common, body string) *goredis.Script {
	return goredis.NewScript(logCommonLua + common + body)
}

// logCursor is a watch's position in a change log.
type logCursor struct {
	stream string // the log's key
	epoch  string // "" until known
	last   uint64 // sequence of the last entry applied
}

// logFollower is one watch of a change log.
type logFollower interface {
	cursor() *logCursor
	// probeCmd runs the log's probe script for the position last; its
	// reply is {epoch or "", last sequence or "", ID of the first entry
	// after last or ""}.
	probeCmd(ctx context.Context, cl goredis.Scripter, last string) *goredis.Cmd
	// resync re-lists, sends the difference to what the watcher holds and
	// moves the cursor to the listed position.
	resync(ctx context.Context, cl goredis.UniversalClient) error
	// apply delivers one entry; false when ctx ended first.
	apply(ctx context.Context, seq uint64, values map[string]any) bool
}

// logSeq parses a log entry ID "<seq>-0".
func logSeq(id string) (uint64, bool) {
	ms, sub, ok := strings.Cut(id, "-")
	if !ok || sub != "0" {
		return 0, false
	}
	n, err := strconv.ParseUint(ms, 10, 64)
	return n, err == nil
}

// probeLog reports whether reading on from f's position is gap-free: the
// same epoch (or none known yet, which it then adopts), the log not behind
// the position, and its next entry, if any, exactly the one after it.
func probeLog(ctx context.Context, cl goredis.Scripter, f logFollower) (bool, error) {
	c := f.cursor()
	ctx, cancel := context.WithTimeout(ctx, discOpTimeout)
	defer cancel()
	vals, err := f.probeCmd(ctx, cl, strconv.FormatUint(c.last, 10)).StringSlice()
	if err != nil {
		return false, err
	}
	if len(vals) != 3 || vals[0] == "" || (c.epoch != "" && vals[0] != c.epoch) {
		return false, nil
	}
	cur, err := strconv.ParseUint(vals[1], 10, 64)
	if err != nil || cur < c.last {
		return false, nil
	}
	if cur > c.last {
		next, ok := logSeq(vals[2])
		if !ok || next != c.last+1 {
			return false, nil
		}
	}
	c.epoch = vals[0]
	return true, nil
}

// readLog blocks for new entries after f's position and applies them in
// order. An entry that does not continue the position (trimmed past it, or
// a new epoch) makes it resync instead. idle is true when the block timed
// out without any entry.
func readLog(ctx context.Context, cl goredis.UniversalClient, f logFollower) (idle bool, err error) {
	c := f.cursor()
	streams, err := cl.XRead(ctx, &goredis.XReadArgs{
		Streams: []string{c.stream, strconv.FormatUint(c.last, 10) + "-0"},
		Count:   discWatchBatch,
		Block:   discWatchBlock,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for _, s := range streams {
		for _, m := range s.Messages {
			seq, ok := logSeq(m.ID)
			epoch, _ := m.Values["e"].(string)
			if !ok || epoch != c.epoch || seq != c.last+1 {
				return false, f.resync(ctx, cl)
			}
			if !f.apply(ctx, seq, m.Values) {
				return false, ctx.Err()
			}
			c.last = seq
		}
	}
	return false, nil
}

// followLog runs f until ctx ends. Whenever entries may have been missed —
// after an error, after an idle read, and at the start when probe is set —
// it probes the position before reading again, and resyncs on a gap.
// Failures are logged (op, attrs, the attempt and the error) at debug level
// and retried with backoff between retryMin and retryMax.
func followLog(ctx context.Context, conn *Connector, f logFollower, probe bool,
	retryMin, retryMax time.Duration, logger *slog.Logger, op string, attrs ...any) {
	attempt := 0
	for ctx.Err() == nil {
		cl, err := conn.client()
		if err == nil && probe {
			var ok bool
			ok, err = probeLog(ctx, cl, f)
			if err == nil && !ok {
				err = f.resync(ctx, cl)
			}
			if err == nil {
				probe = false
			}
		}
		if err == nil {
			var idle bool
			idle, err = readLog(ctx, cl, f)
			if idle {
				probe = true
			}
		}
		if err == nil {
			attempt = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		probe = true
		args := append(attrs[:len(attrs):len(attrs)], "attempt", attempt, "err", mapErr(op, err))
		logger.Debug("watch interrupted", args...)
		if !discSleep(ctx, discBackoff(retryMin, retryMax, attempt)) {
			return
		}
		attempt++
	}
}

// sendEvent delivers ev on ch; false when ctx ended first.
func sendEvent[E any](ctx context.Context, ch chan<- E, ev E) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
