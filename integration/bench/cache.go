package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backends"
)

// The cache scenarios read and write a fixed key space with small values, so every Get hits.
const (
	cacheKeys      = 1024
	cacheValueSize = 64
)

var cacheValue = bytes.Repeat([]byte("v"), cacheValueSize)

// cacheKey spreads workers over the key space so that concurrent callers touch different keys.
func cacheKey(worker, i int) int { return (worker*7919 + i) % cacheKeys }

// cacheRunners returns the implementations of cache.get (get=true) or cache.set on s, with the
// key space already written (through each implementation's own path, under its own prefix).
func cacheRunners(ctx context.Context, s *stack, get bool) ([]*runner, error) {
	var out []*runner

	// baton: the node's cache actor through the typed facade (auto-pipelined by the actor).
	cc := s.node.Cache("bench")
	keys := make([]string, cacheKeys)
	items := make([]backends.CacheItem, 0, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
		items = append(items, backends.CacheItem{Key: keys[i], Value: cacheValue})
		if len(items) == cap(items) {
			if err := cc.SetMany(ctx, items); err != nil {
				return nil, fmt.Errorf("baton cache: fill: %w", err)
			}
			items = items[:0]
		}
	}
	baton := &runner{impl: "baton", run: func(ctx context.Context, callers int, d time.Duration) round {
		return closedLoop(ctx, callers, d, false, func(ctx context.Context, w, i int) (time.Duration, error) {
			k := keys[cacheKey(w, i)]
			start := time.Now()
			var err error
			if get {
				_, err = cc.Get(ctx, k)
			} else {
				err = cc.Set(ctx, k, cacheValue, 0)
			}
			return time.Since(start), err
		})
	}}
	out = append(out, baton)

	// direct and goredis-autopipeline: the raw clients on keys of the same shape.
	direct := make([]string, cacheKeys)
	for i := range direct {
		direct[i] = namespace.Key(backends.ComponentCache, "bench-direct", fmt.Sprintf("k%04d", i))
	}
	switch s.backend {
	case backends.BackendRedis:
		pipe := s.rdb.Pipeline()
		for _, k := range direct {
			pipe.Set(ctx, k, cacheValue, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redis: fill: %w", err)
		}
		out = append(out, redisCacheRunner("direct", s.rdb, direct, get, nil))

		// go-redis's own auto-pipelining (Client.AutoPipeline, the blocking face, default
		// options), on a client of its own so its pipeline pool is not shared.
		apClient := goredis.NewClient(&goredis.Options{Addr: s.addr[0]})
		ap, err := apClient.AutoPipeline()
		if err != nil {
			_ = apClient.Close()
			return nil, fmt.Errorf("go-redis autopipeline: %w", err)
		}
		out = append(out, redisCacheRunner("goredis-autopipeline", ap, direct, get, func(context.Context) error {
			_ = ap.Close()
			return apClient.Close()
		}))
	default:
		for _, k := range direct {
			if _, err := s.etcd.Put(ctx, k, string(cacheValue)); err != nil {
				return nil, fmt.Errorf("etcd: fill: %w", err)
			}
		}
		value := string(cacheValue)
		out = append(out, &runner{impl: "direct", run: func(ctx context.Context, callers int, d time.Duration) round {
			return closedLoop(ctx, callers, d, false, func(ctx context.Context, w, i int) (time.Duration, error) {
				k := direct[cacheKey(w, i)]
				start := time.Now()
				if get {
					resp, err := s.etcd.Get(ctx, k)
					if err == nil && len(resp.Kvs) == 0 {
						err = fmt.Errorf("etcd get %q: %w", k, backends.ErrNotFound)
					}
					return time.Since(start), err
				}
				_, err := s.etcd.Put(ctx, k, value)
				return time.Since(start), err
			})
		}})
	}
	return out, nil
}

// getSetter is the part of go-redis's command surface the cache scenarios use; both the plain
// client and the auto-pipeliner have it.
type getSetter interface {
	Get(ctx context.Context, key string) *goredis.StringCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *goredis.StatusCmd
}

// redisCacheRunner runs Get or Set through a go-redis command surface: the plain client (one
// round trip per call) or the blocking auto-pipeliner.
func redisCacheRunner(impl string, c getSetter, keys []string, get bool, closeFn func(context.Context) error) *runner {
	return &runner{impl: impl, close: closeFn, run: func(ctx context.Context, callers int, d time.Duration) round {
		return closedLoop(ctx, callers, d, false, func(ctx context.Context, w, i int) (time.Duration, error) {
			k := keys[cacheKey(w, i)]
			start := time.Now()
			var err error
			if get {
				err = c.Get(ctx, k).Err()
			} else {
				err = c.Set(ctx, k, cacheValue, 0).Err()
			}
			return time.Since(start), err
		})
	}}
}
