-- Extend leadership only while the leader key is still ours.
-- KEYS[1] leader key; ARGV[1] candidate id, ARGV[2] ttl in milliseconds
-- Returns 1 when extended, 0 when leadership is lost.
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then
  return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
