-- Extend the lock only if we hold it.
-- KEYS[1] owner key; ARGV[1] holder value, ARGV[2] ttl in milliseconds
-- Returns 1 when extended, 0 when not held by ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
