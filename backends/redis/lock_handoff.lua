-- Pass a held lock straight to a new holder, with the next fencing token.
-- The lock never becomes free, so nothing is published: no waiter could
-- take it anyway.
-- KEYS[1] owner key, KEYS[2] fencing counter (same hash slot)
-- ARGV[1] current holder value, ARGV[2] new holder value,
-- ARGV[3] ttl in milliseconds
-- Returns the new token, or 0 when ARGV[1] does not hold the lock.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local token = next_fence(KEYS[2])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return token
