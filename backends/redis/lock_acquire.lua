-- Take a free lock and hand out the next fencing token.
-- KEYS[1] owner key, KEYS[2] fencing counter (same hash slot)
-- ARGV[1] holder value (nonce|owner), ARGV[2] ttl in milliseconds
-- Returns {token, 0} when taken, {0, pttl of the holder} when held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local token = next_fence(KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {token, 0}
