-- Look a held lock up for adoption by another Locker.
-- KEYS[1] owner key, KEYS[2] fencing counter (same hash slot)
-- ARGV[1] holder value (nonce|owner), ARGV[2] the lease's token
-- Returns the key's remaining TTL in milliseconds when ARGV[1] holds it
-- and its token is the last one handed out, -3 otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return -3
end
return redis.call('PTTL', KEYS[1])
