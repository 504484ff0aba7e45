-- Value and version of one key. ARGV[1] key.
-- Returns {value, version}, or nil when the key does not exist.
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then
  return nil
end
return {redis.call('HGET', KEYS[2], ARGV[1]) or '', v}
