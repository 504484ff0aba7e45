-- Shared by the scripts that hand out fencing values (lock tokens, election
-- epochs); the Go side prepends this file.

-- next_fence bumps the counter at key and returns its new value. A missing
-- counter is first seeded from the server clock (microseconds), so values
-- keep increasing even after the data set was lost (a restart without
-- persistence, an eviction).
local function next_fence(key)
  if redis.call('EXISTS', key) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', key, t[1] .. string.rep('0', 6 - #t[2]) .. t[2])
  end
  return redis.call('INCR', key)
end
