-- Shared by every discovery script; the Go side prepends this file (after
-- log_common.lua).
--
-- KEYS[1] index:  ZSET instance id -> deadline (server time, ms)
-- KEYS[2] log:    STREAM of changes, entry IDs "<seq>-0"
-- KEYS[3] meta:   HASH epoch, seq (the last seq written to the log)
-- ARGV[1] prefix of the instance data keys (prefix .. id)
-- ARGV[2] approximate MAXLEN of the log
--
-- All keys share one hash tag, so the data keys built here from ARGV[1] live
-- in the same cluster slot as the declared ones.

local function disc_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- disc_meta returns the log's epoch and last seq (see log_meta: a new
-- service, or a server that lost its data, starts a new epoch).
local function disc_meta(create)
  return log_meta(KEYS[3], KEYS[2], 'seq', create)
end

-- disc_emit appends one change to the log. The XADD comes first so that a
-- failing append leaves nothing half-written.
local function disc_emit(kind, id, info)
  local epoch, seq = disc_meta(true)
  local nextseq = string.format('%d', tonumber(seq) + 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], nextseq .. '-0',
    't', kind, 'id', id, 'info', info, 'e', epoch)
  redis.call('HSET', KEYS[3], 'seq', nextseq)
  return nextseq
end

-- disc_sweep removes every instance whose deadline has passed and logs a
-- removal for each. Running it inside the script that also reads or writes
-- keeps one invariant: after the sweep, index membership is exactly what
-- the log has announced, so watchers and the index never disagree.
local function disc_sweep(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    local dk = ARGV[1] .. id
    local info = redis.call('GET', dk)
    redis.call('DEL', dk)
    disc_emit('removed', id, info or '')
  end
  return #ids
end

-- disc_put writes an instance and logs "added" when it was not in the index,
-- "updated" when its data changed; an identical rewrite logs nothing.
local function disc_put(now, id, info, ttl)
  local known = redis.call('ZSCORE', KEYS[1], id)
  local dk = ARGV[1] .. id
  local old = redis.call('GET', dk)
  redis.call('SET', dk, info, 'PX', ttl)
  redis.call('ZADD', KEYS[1], now + ttl, id)
  if not known then
    disc_emit('added', id, info)
  elseif old ~= info then
    disc_emit('updated', id, info)
  end
end
