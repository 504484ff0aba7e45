package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-go/baton/backends"
)

// Discover returns the live instances of serviceName (deadline not passed
// and data present), sorted by ID. Expired instances are swept first, so
// their removal reaches watchers even when no Discovery sweeps this service.
func (d *registry) Discover(ctx context.Context, serviceName string) ([]backends.ServiceInfo, error) {
	const op = "redis discovery: discover"
	if err := backends.ValidateName("service name", serviceName); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if d.isClosed() {
		return nil, d.errClosed(op)
	}
	snap, err := d.snapshot(ctx, op, serviceName, false)
	if err != nil {
		return nil, err
	}
	out := make([]backends.ServiceInfo, 0, len(snap.instances))
	for _, e := range snap.instances {
		out = append(out, e.svc)
	}
	return out, nil
}

// discInstance is an instance with the JSON it was stored as.
type discInstance struct {
	svc backends.ServiceInfo
	raw string
}

type discSnapshot struct {
	epoch     string
	seq       uint64
	instances []discInstance // sorted by ID
}

// snapshot sweeps, then lists the live instances and the log position in
// one script. With start, a missing log epoch is created (watches need one).
func (d *registry) snapshot(ctx context.Context, op, service string, start bool) (discSnapshot, error) {
	cl, err := d.conn.client()
	if err != nil {
		return discSnapshot{}, fmt.Errorf("%s: %w", op, err)
	}
	flag := "0"
	if start {
		flag = "1"
	}
	vals, err := d.keys(service).run(ctx, cl, discSnapshotScript, flag).StringSlice()
	if err != nil {
		return discSnapshot{}, mapErr(op, err)
	}
	return d.decodeSnapshot(op, service, vals)
}

// decodeSnapshot reads the snapshot script's reply: epoch, log sequence,
// then id and instance JSON per instance. Instances that do not decode are
// skipped (see decode); a reply of another shape, or a sequence that is not
// a number, is an error.
func (d *registry) decodeSnapshot(op, service string, vals []string) (discSnapshot, error) {
	if len(vals) < 2 || len(vals)%2 != 0 {
		return discSnapshot{}, fmt.Errorf("%s: unexpected snapshot reply of %d values", op, len(vals))
	}
	snap := discSnapshot{epoch: vals[0]}
	if vals[1] != "" {
		var err error
		if snap.seq, err = strconv.ParseUint(vals[1], 10, 64); err != nil {
			return discSnapshot{}, fmt.Errorf("%s: bad log sequence %q", op, vals[1])
		}
	}
	for i := 2; i < len(vals); i += 2 {
		svc, ok := d.decode(service, vals[i], vals[i+1])
		if ok {
			snap.instances = append(snap.instances, discInstance{svc: svc, raw: vals[i+1]})
		}
	}
	slices.SortFunc(snap.instances, func(a, b discInstance) int { return strings.Compare(a.svc.ID, b.svc.ID) })
	return snap, nil
}

// decode parses stored instance JSON; data that is not ours is logged and
// skipped rather than failing every reader. The id and service name come
// from where the instance is stored, and the result must pass
// ServiceInfo.Validate as every registration does, so a reader never gets
// an instance Register would have refused (no address, a negative weight,
// an id that is not a name).
func (d *registry) decode(service, id, raw string) (backends.ServiceInfo, bool) {
	var svc backends.ServiceInfo
	err := json.Unmarshal([]byte(raw), &svc)
	if err == nil {
		svc.ID, svc.Name = id, service
		err = svc.Validate()
	}
	if err != nil {
		d.logger.Warn("skipping undecodable instance", "service", service, "id", id, "err", err)
		return backends.ServiceInfo{}, false
	}
	return svc, true
}
