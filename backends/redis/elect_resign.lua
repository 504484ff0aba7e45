-- Give up leadership only if it is ours, and tell candidates and observers.
-- KEYS[1] leader key; ARGV[1] candidate id, ARGV[2] events channel
-- Returns 1 when resigned, 0 when leadership was not ours.
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '')
return 1
