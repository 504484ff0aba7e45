-- Remove one instance at once.
-- ARGV[3] id, ARGV[4] instance JSON (used when the data key is gone).
-- Returns 1 when the instance was in the index, 0 otherwise.
local now = disc_now()
disc_sweep(now)
local id = ARGV[3]
local dk = ARGV[1] .. id
local info = redis.call('GET', dk)
redis.call('DEL', dk)
if redis.call('ZREM', KEYS[1], id) == 1 then
  disc_emit('removed', id, info or ARGV[4])
  return 1
end
return 0
