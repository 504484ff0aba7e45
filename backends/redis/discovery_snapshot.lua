-- List the live instances together with the log position, atomically.
-- ARGV[3] "1" to start the log's epoch when missing (watch), "0" to leave
-- the server untouched beyond the sweep (discover).
-- Returns {epoch or "", seq or "", id1, info1, id2, info2, ...}: instances
-- whose deadline is ahead and whose data key exists (the sweep is capped per
-- call, so expired entries may remain in the index until the next one).
local now = disc_now()
disc_sweep(now)
local epoch, seq = disc_meta(ARGV[3] == '1')
local out = {epoch or '', seq or ''}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now), '+inf')
for _, id in ipairs(ids) do
  local info = redis.call('GET', ARGV[1] .. id)
  if info then
    out[#out + 1] = id
    out[#out + 1] = info
  end
end
return out
