-- Every key starting with ARGV[1] ("" = all) with value and version, and
-- the namespace position, atomically. ARGV[2] "1" starts a missing epoch
-- (watches need one), "0" leaves the server untouched.
-- Returns {epoch or "", version or "", key1, value1, version1, ...}.
local epoch, version = cfg_meta(ARGV[2] == '1')
local out = {epoch or '', version or ''}
local prefix = ARGV[1]
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local k = all[i]
  if prefix == '' or string.sub(k, 1, #prefix) == prefix then
    out[#out + 1] = k
    out[#out + 1] = redis.call('HGET', KEYS[2], k) or ''
    out[#out + 1] = all[i + 1]
  end
end
return out
