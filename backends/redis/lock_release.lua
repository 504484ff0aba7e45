-- Delete the lock only if we hold it, and tell the waiters.
-- KEYS[1] owner key; ARGV[1] holder value, ARGV[2] release channel
-- Returns 1 when released, 0 when not held by ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
