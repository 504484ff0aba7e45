-- Where does the log stand relative to a watcher at ARGV[3] (a seq)?
-- Returns {epoch or "", seq or "", ID of the first entry after ARGV[3] or ""}.
return log_probe(KEYS[3], KEYS[2], 'seq', ARGV[3])
