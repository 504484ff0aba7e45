-- Register (or update) one instance.
-- ARGV[3] id, ARGV[4] instance JSON, ARGV[5] ttl in ms.
local now = disc_now()
disc_sweep(now)
disc_put(now, ARGV[3], ARGV[4], tonumber(ARGV[5]))
return 1
