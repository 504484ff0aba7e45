-- Write the value key had at a version again, as a new version.
-- ARGV[1] key, ARGV[2] version, ARGV[3] history limit, ARGV[4] log MAXLEN.
-- Returns {"ok", new version, value} or {"notfound"} when that version is
-- not a kept write of the key.
local want = ARGV[2] .. ':p:'
local entries = redis.call('LRANGE', KEYS[5], 0, -1)
for _, e in ipairs(entries) do
  if string.sub(e, 1, #want) == want then
    local value = string.sub(e, #want + 1)
    return {'ok', cfg_write(ARGV[1], value, false, ARGV[3], ARGV[4]), value}
  end
end
return {'notfound'}
