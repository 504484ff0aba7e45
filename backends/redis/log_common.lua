-- Shared by the config and the discovery scripts: the Go side prepends this
-- file to their own common file. Both keep a change log, a STREAM whose
-- entry IDs are "<seq>-0", and beside it a meta HASH holding the log's epoch
-- and its last seq (under a field name of their choosing).

-- log_meta returns the epoch and last seq (as strings) kept in metakey. A
-- missing meta hash means the log is new or the server lost its data: a new
-- epoch starts, its seq seeded from the server clock in microseconds so that
-- later epochs sort above earlier ones, and the old log (if any) is dropped
-- so that explicit entry IDs always increase. Without create it returns
-- false, false instead.
local function log_meta(metakey, logkey, seqfield, create)
  local m = redis.call('HMGET', metakey, 'epoch', seqfield)
  if m[1] and m[2] then
    return m[1], m[2]
  end
  if not create then
    return false, false
  end
  local t = redis.call('TIME')
  local seed = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('DEL', logkey)
  redis.call('HSET', metakey, 'epoch', seed, seqfield, seed)
  return seed, seed
end

-- log_probe tells a watcher at seq pos where the log stands:
-- {epoch or "", last seq or "", ID of the first entry after pos or ""}.
local function log_probe(metakey, logkey, seqfield, pos)
  local epoch, seq = log_meta(metakey, logkey, seqfield, false)
  local first = ''
  if epoch then
    local e = redis.call('XRANGE', logkey, '(' .. pos .. '-0', '+', 'COUNT', 1)
    if #e > 0 then
      first = e[1][1]
    end
  end
  return {epoch or '', seq or '', first}
end
