package backends

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ServiceInfo describes one registered instance of a service.
type ServiceInfo struct {
	ID       string            `json:"id"`      // unique per instance (ValidateName rules)
	Name     string            `json:"name"`    // service name (ValidateName rules)
	Address  string            `json:"address"` // host:port or URL; must not be empty
	Metadata map[string]string `json:"metadata,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Version  string            `json:"version,omitempty"`
	Weight   int               `json:"weight,omitempty"` // >= 0; 0 means the default weight
}

// Limits of a ServiceInfo, checked by Validate. A registration is stored
// whole, sent whole with every watch event and every keep-alive that
// restores it, and held by every watcher, so it must stay small: large
// data belongs in the config center or a store of its own, and the
// registration can name it.
const (
	// MaxServiceMetadataSize bounds the metadata: the bytes of all keys
	// and values together (64 KiB).
	MaxServiceMetadataSize = 64 << 10
	// MaxServiceTags bounds the number of tags.
	MaxServiceTags = 64
	// MaxServiceTagLen bounds one tag, in bytes.
	MaxServiceTagLen = 256
	// MaxServiceVersionLen bounds the version, in bytes.
	MaxServiceVersionLen = 256
)

// Validate checks ID, Name, Address and Weight, and that Metadata, Tags and
// Version stay within MaxServiceMetadataSize, MaxServiceTags,
// MaxServiceTagLen and MaxServiceVersionLen. A violation is an
// *InvalidArgumentError naming the field.
func (s ServiceInfo) Validate() error {
	if err := ValidateName("service id", s.ID); err != nil {
		return err
	}
	if err := ValidateName("service name", s.Name); err != nil {
		return err
	}
	if s.Address == "" {
		return Invalid("service address", s.Address, "must not be empty")
	}
	if len(s.Address) > MaxKeyLen {
		return Invalid("service address", s.Address, "longer than 512 bytes")
	}
	if s.Weight < 0 {
		return Invalid("service weight", s.Weight, "must not be negative")
	}
	size := 0
	for k, v := range s.Metadata {
		size += len(k) + len(v)
	}
	if size > MaxServiceMetadataSize {
		return Invalid("service metadata", fmt.Sprintf("%d entries, %d bytes", len(s.Metadata), size),
			fmt.Sprintf("larger than %d bytes (keys and values together)", MaxServiceMetadataSize))
	}
	if len(s.Tags) > MaxServiceTags {
		return Invalid("service tags", fmt.Sprintf("%d tags", len(s.Tags)), fmt.Sprintf("more than %d tags", MaxServiceTags))
	}
	for i, tag := range s.Tags {
		if len(tag) > MaxServiceTagLen {
			return Invalid(fmt.Sprintf("service tags[%d]", i), tag, fmt.Sprintf("longer than %d bytes", MaxServiceTagLen))
		}
	}
	if len(s.Version) > MaxServiceVersionLen {
		return Invalid("service version", s.Version, fmt.Sprintf("longer than %d bytes", MaxServiceVersionLen))
	}
	return nil
}

// ServiceDiscovery registers and finds service instances.
type ServiceDiscovery interface {
	// Register publishes svc with a time-to-live (0 = DefaultRegistrationTTL)
	// and keeps it alive until Deregister or Close. Registration is
	// self-healing: when the lease/TTL is lost (backend restarted with empty
	// data, keep-alive failed, key removed by someone else) it is restored
	// automatically, retrying forever with jittered backoff; the loss and the
	// restoration are reported to DiscoveryOptions.OnRegistration.
	// Registering an ID again updates the instance.
	Register(ctx context.Context, svc ServiceInfo, ttl time.Duration) error
	// Deregister removes an instance registered through this value at once.
	// ErrNotFound when this value holds no registration with that ID.
	Deregister(ctx context.Context, serviceID string) error
	// Discover returns the live instances of a service, sorted by ID; an
	// empty slice (not an error) when there are none.
	Discover(ctx context.Context, serviceName string) ([]ServiceInfo, error)
	// Watch sends a ServiceSnapshot event with the consistent current list,
	// then Added / Updated / Removed events, until ctx ends (the channel is
	// then closed). It never loses an event: after a reconnect it resumes
	// from the last seen revision; after a gap (compaction, trimmed log) it
	// re-lists and sends exactly the difference.
	Watch(ctx context.Context, serviceName string) (<-chan ServiceEvent, error)
	// HealthCheck reports whether the backend is reachable.
	HealthCheck(ctx context.Context) error
	// Close stops keep-alives and watches and deregisters what is still
	// registered; see Lifecycle in the package documentation.
	io.Closer
}

// ServiceEventType is the kind of a ServiceEvent.
type ServiceEventType int

// Service event kinds.
const (
	ServiceSnapshot ServiceEventType = iota + 1 // Instances holds the full list
	ServiceAdded
	ServiceUpdated
	ServiceRemoved // Service holds at least ID and Name
)

func (t ServiceEventType) String() string {
	switch t {
	case ServiceSnapshot:
		return "snapshot"
	case ServiceAdded:
		return "added"
	case ServiceUpdated:
		return "updated"
	case ServiceRemoved:
		return "removed"
	}
	return "unknown"
}

// ServiceEvent is one change seen by Watch.
type ServiceEvent struct {
	Type      ServiceEventType
	Service   ServiceInfo   // Added, Updated, Removed
	Instances []ServiceInfo // Snapshot only, sorted by ID
	// Revision is the backend position of the event (etcd revision, Redis
	// stream sequence); informational.
	Revision uint64
}

// RegistrationState is reported through DiscoveryOptions.OnRegistration.
type RegistrationState int

// Registration states.
const (
	RegistrationLost     RegistrationState = iota + 1 // lease/TTL lost; restoring
	RegistrationRestored                              // registered again
)

func (s RegistrationState) String() string {
	switch s {
	case RegistrationLost:
		return "lost"
	case RegistrationRestored:
		return "restored"
	}
	return "unknown"
}

// RegistrationEvent reports the loss or restoration of a registration.
type RegistrationEvent struct {
	ServiceID   string
	ServiceName string
	State       RegistrationState
	Err         error // the cause of a loss
}

// DefaultRegistrationTTL is used when Register is given ttl == 0.
const DefaultRegistrationTTL = 10 * time.Second

// DiscoveryOptions configures a ServiceDiscovery implementation.
type DiscoveryOptions struct {
	// Namespace scopes the keys (root + env). Env is required.
	Namespace Namespace
	// OnRegistration, if set, is called (from a background goroutine, never
	// concurrently for one value) when a registration is lost or restored.
	// It must not block for long.
	OnRegistration func(RegistrationEvent)
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// restoration attempts. Defaults: 100ms and 5s.
	RetryMin, RetryMax time.Duration
}

// ApplyServiceEvent folds ev into view (service id → instance), the
// current set of instances a watcher holds: a snapshot replaces it, added
// and updated instances are stored, removed ones deleted. It returns the
// view, allocated when nil.
func ApplyServiceEvent(view map[string]ServiceInfo, ev ServiceEvent) map[string]ServiceInfo {
	switch ev.Type {
	case ServiceSnapshot:
		view = make(map[string]ServiceInfo, len(ev.Instances))
		for _, s := range ev.Instances {
			view[s.ID] = s
		}
	case ServiceAdded, ServiceUpdated:
		if view == nil {
			view = map[string]ServiceInfo{}
		}
		view[ev.Service.ID] = ev.Service
	case ServiceRemoved:
		delete(view, ev.Service.ID)
	}
	return view
}
