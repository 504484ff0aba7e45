package redis

import (
	"context"
	"time"
)

// sweepLoop removes expired instances of the services in use here, so their
// removal is logged (and watchers told) even when their owner died.
func (d *registry) sweepLoop() {
	defer d.wg.Done()
	t := time.NewTicker(discSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		names := make([]string, 0, len(d.services))
		for n := range d.services {
			names = append(names, n)
		}
		d.mu.Unlock()
		cl, err := d.conn.client()
		if err != nil {
			continue
		}
		for _, n := range names {
			ctx, cancel := context.WithTimeout(d.ctx, discOpTimeout)
			err := d.keys(n).run(ctx, cl, discSweepScript).Err()
			cancel()
			if d.ctx.Err() != nil {
				return
			}
			if err != nil {
				d.logger.Debug("sweep failed", "service", n, "err", err)
				break // the server is likely down; try again next tick
			}
		}
	}
}
