-- Become leader if there is none; the epoch is bumped in the same step.
-- KEYS[1] leader key, KEYS[2] epoch counter (same hash slot)
-- ARGV[1] candidate id, ARGV[2] value, ARGV[3] ttl in milliseconds,
-- ARGV[4] events channel
-- Returns {epoch, ''} when elected, {0, pttl of the current leader} otherwise.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local epoch = next_fence(KEYS[2])
-- %d, not plain concatenation: Lua would print a 16-digit number as 1.7e+15.
local v = ARGV[1] .. '|' .. string.format('%d', epoch) .. '|' .. ARGV[2]
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], v)
return {epoch, 0}
