-- Take a free lock and hand out the next fencing token.
-- KEYS[1] owner key, KEYS[2] fencing counter (same hash slot)
-- ARGV[1] holder value (nonce|owner), ARGV[2] ttl in milliseconds
-- Returns {token, 0} when taken, {0, pttl of the holder} when held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Seed a missing counter from the server clock (microseconds) so tokens
  -- keep increasing even after the data set was lost (restart without
  -- persistence, eviction).
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.rep('0', 6 - #t[2]) .. t[2])
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {token, 0}
