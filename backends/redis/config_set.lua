-- Set a key, optionally only if its version matches.
-- ARGV[1] key, ARGV[2] value, ARGV[3] "any" or "cas", ARGV[4] expected
-- version ("0" = must not exist), ARGV[5] history limit, ARGV[6] log MAXLEN.
-- Returns {"ok", version} or {"conflict", current version or "0"}.
if ARGV[3] == 'cas' then
  local cur = redis.call('HGET', KEYS[3], ARGV[1])
  if ARGV[4] == '0' then
    if cur then
      return {'conflict', cur}
    end
  elseif cur ~= ARGV[4] then
    return {'conflict', cur or '0'}
  end
end
return {'ok', cfg_write(ARGV[1], ARGV[2], false, ARGV[5], ARGV[6])}
