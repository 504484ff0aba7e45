-- Where does the log stand relative to a watcher at ARGV[3] (a seq)?
-- Returns {epoch or "", seq or "", ID of the first entry after ARGV[3] or ""}.
local epoch, seq = disc_meta(false)
local first = ''
if epoch then
  local e = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+', 'COUNT', 1)
  if #e > 0 then
    first = e[1][1]
  end
end
return {epoch or '', seq or '', first}
