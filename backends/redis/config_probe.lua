-- Where does the log stand relative to a watcher at version ARGV[1]?
-- Returns {epoch or "", version or "", ID of the first entry after ARGV[1] or ""}.
local epoch, version = cfg_meta(false)
local first = ''
if epoch then
  local e = redis.call('XRANGE', KEYS[4], '(' .. ARGV[1] .. '-0', '+', 'COUNT', 1)
  if #e > 0 then
    first = e[1][1]
  end
end
return {epoch or '', version or '', first}
