-- Delete a key. ARGV[1] key, ARGV[2] history limit, ARGV[3] log MAXLEN.
-- Returns {"ok", version} or {"noop"} when the key does not exist (no new
-- version, no log entry).
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  return {'noop'}
end
return {'ok', cfg_write(ARGV[1], '', true, ARGV[2], ARGV[3])}
