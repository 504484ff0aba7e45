-- Keep one instance alive.
-- ARGV[3] id, ARGV[4] instance JSON, ARGV[5] ttl in ms.
-- Returns 1 when the instance was still there (its TTL and deadline are
-- extended), 0 when it was gone and has been registered again.
local now = disc_now()
disc_sweep(now)
local id, ttl = ARGV[3], tonumber(ARGV[5])
local dk = ARGV[1] .. id
if redis.call('PEXPIRE', dk, ttl) == 1 then
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], now + ttl, id)
    return 1
  end
  -- Data without an index entry: someone removed it from the index; put it
  -- back as a new instance so watchers hear about it.
end
disc_put(now, id, ARGV[4], ttl)
return 0
