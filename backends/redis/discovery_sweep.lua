-- Remove expired instances. Returns how many were removed.
return disc_sweep(disc_now())
