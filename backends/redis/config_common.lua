-- Shared by every config script; the Go side prepends this file (after
-- log_common.lua).
--
-- KEYS[1] meta:     HASH epoch, version (the namespace's last version)
-- KEYS[2] values:   HASH key -> value
-- KEYS[3] versions: HASH key -> version of its last write
-- KEYS[4] log:      STREAM of changes, entry IDs "<version>-0"
-- KEYS[5] history:  LIST of the key's writes, newest first (write scripts only)
--
-- Versions are decimal strings throughout: they are seeded from the server
-- clock in microseconds (~1.8e15), beyond what Lua prints exactly with
-- tostring, so they are formatted with %d and compared as strings.

-- cfg_meta returns the namespace epoch and version (see log_meta: a new
-- namespace, or a server that lost its data, starts a new epoch whose
-- versions stay above the old ones).
local function cfg_meta(create)
  return log_meta(KEYS[1], KEYS[4], 'version', create)
end

-- cfg_write records one put (deleted = false) or delete of key with a new
-- version: log entry, value, version, history, all at once. The XADD comes
-- first so that a failing append leaves nothing half-written. History
-- entries are "<version>:<p|d>:<value>" — binary-safe, unlike JSON here.
local function cfg_write(key, value, deleted, histlimit, maxlen)
  local epoch, cur = cfg_meta(true)
  local v = string.format('%d', tonumber(cur) + 1)
  local t = 'p'
  if deleted then
    t = 'd'
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, v .. '-0', 't', t, 'k', key, 'v', value, 'e', epoch)
  redis.call('HSET', KEYS[1], 'version', v)
  if deleted then
    redis.call('HDEL', KEYS[2], key)
    redis.call('HDEL', KEYS[3], key)
  else
    redis.call('HSET', KEYS[2], key, value)
    redis.call('HSET', KEYS[3], key, v)
  end
  redis.call('LPUSH', KEYS[5], v .. ':' .. t .. ':' .. value)
  redis.call('LTRIM', KEYS[5], 0, tonumber(histlimit) - 1)
  return v
end
