-- Where does the log stand relative to a watcher at version ARGV[1]?
-- Returns {epoch or "", version or "", ID of the first entry after ARGV[1] or ""}.
return log_probe(KEYS[1], KEYS[4], 'version', ARGV[1])
