package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/runtime"
)

// Spec configures a cluster node. The zero value plus a Node section is
// a member on 127.0.0.1 with a free port; without a Node section the node
// is client-only and needs Seeds.
type Spec struct {
	// Name is the cluster name: members register in discovery as instances
	// of the service of that name. Default: "baton".
	Name string `yaml:"name"`
	// Bind is the host:port remoting listens on; port 0 takes a free port.
	// Default: "127.0.0.1:0".
	Bind string `yaml:"bind"`
	// Advertise is the host:port other nodes dial. A host alone takes the
	// bound port. Default: the bound address; required when Bind's host is
	// a wildcard (0.0.0.0 or ::).
	Advertise string `yaml:"advertise"`
	// Node is the backend configuration, as for a standalone runtime.Node;
	// a member hosts the lock, cache and config grains on it. Nil makes a
	// client-only node: it registers nothing, hosts nothing and uses the
	// components through the members.
	Node *runtime.Spec `yaml:"node"`
	// Seeds are member addresses (host:port) a client-only node learns the
	// membership from, tried in order; once joined it also falls back to
	// any member it knows. Required for a client-only node.
	Seeds []string `yaml:"seeds"`
	// Env and Root are the key namespace of a client-only node's
	// components (a member uses its Node's). Defaults: "dev" and "baton".
	Env  string `yaml:"env"`
	Root string `yaml:"root"`
	// NodeID names a client-only node in lock owners (a member uses its
	// Node's). Default: "<hostname>-<pid>".
	NodeID string `yaml:"node_id"`
	// MemberTTL is the TTL of a member's registration: a member that dies
	// drops out of discovery after at most this long. Default: 5s (etcd
	// rounds up to whole seconds, minimum 2s).
	MemberTTL time.Duration `yaml:"member_ttl"`
	// ProbeInterval is how often every member is pinged — a TCP connect
	// to its remoting port, then a Touch its actor system answers. A member
	// missing from discovery stays in the topology while it answers (its
	// registration is being restored, e.g. after a backend restart).
	// Default: 500ms.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// PingTimeout bounds one ping. Default: 1s.
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// SuspectAfter takes a member that accepts connections but has answered
	// no ping for this long (paused, hung) out of the topology, so its
	// grains move; it is admitted again once it answers. Keep it below the
	// lock TTLs you use and well above the pauses a loaded member can
	// take. Default: 3s.
	SuspectAfter time.Duration `yaml:"suspect_after"`
	// MaxAbsence removes a member missing from discovery for this long even
	// if it still answers pings. Default: 30s.
	MaxAbsence time.Duration `yaml:"max_absence"`
	// GrainIdleTimeout stops a lock grain that has had nothing queued or
	// held for this long; the next request activates it again.
	// Default: 1m.
	GrainIdleTimeout time.Duration `yaml:"grain_idle_timeout"`
	// ResolveTimeout bounds one grain lookup (a round trip to the owning
	// member). Default: 5s.
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
}

// Default cluster settings.
const (
	defaultName             = "baton"
	defaultBind             = "127.0.0.1:0"
	defaultMemberTTL        = 5 * time.Second
	defaultProbeInterval    = 500 * time.Millisecond
	defaultPingTimeout      = time.Second
	defaultSuspectAfter     = 3 * time.Second
	defaultMaxAbsence       = 30 * time.Second
	defaultGrainIdleTimeout = time.Minute
	defaultResolveTimeout   = 5 * time.Second
)

// ClientOnly reports whether the node has no backend.
func (c Spec) ClientOnly() bool { return c.Node == nil }

func (c *Spec) applyDefaults() {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.Bind == "" {
		c.Bind = defaultBind
	}
	if c.Env == "" {
		c.Env = "dev"
	}
	if c.Root == "" {
		c.Root = backends.DefaultRoot
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		c.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.MemberTTL, defaultMemberTTL}, {&c.ProbeInterval, defaultProbeInterval},
		{&c.PingTimeout, defaultPingTimeout}, {&c.MaxAbsence, defaultMaxAbsence},
		{&c.SuspectAfter, defaultSuspectAfter}, {&c.GrainIdleTimeout, defaultGrainIdleTimeout}, {&c.ResolveTimeout, defaultResolveTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
}

// Validate checks the configuration (after defaults) and returns the first
// problem as an ErrInvalidArgument naming the field and the value.
func (c Spec) Validate() error {
	c.applyDefaults()
	if err := backends.ValidateName("cluster.name", c.Name); err != nil {
		return err
	}
	bindHost, _, err := splitHostPort("cluster.bind", c.Bind, false)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(bindHost); ip != nil && ip.IsUnspecified() && c.Advertise == "" {
		return backends.Invalid("cluster.advertise", "", "needed when binding "+bindHost+" (peers cannot dial it)")
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort("cluster.advertise", c.Advertise, true); err != nil {
			return err
		}
	}
	for _, s := range c.Seeds {
		if _, port, err := splitHostPort("cluster.seeds", s, false); err != nil {
			return err
		} else if port == 0 {
			return backends.Invalid("cluster.seeds", s, "needs a port")
		}
	}
	if c.ClientOnly() {
		if len(c.Seeds) == 0 {
			return backends.Invalid("cluster.seeds", "", "a client-only node (no node section) needs at least one seed")
		}
		if err := (backends.Namespace{Root: c.Root, Env: c.Env}).Validate(); err != nil {
			return err
		}
		if err := backends.ValidateName("cluster.node_id", c.NodeID); err != nil {
			return err
		}
	} else if err := c.Node.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"cluster.member_ttl", c.MemberTTL}, {"cluster.probe_interval", c.ProbeInterval},
		{"cluster.ping_timeout", c.PingTimeout}, {"cluster.max_absence", c.MaxAbsence},
		{"cluster.suspect_after", c.SuspectAfter}, {"cluster.grain_idle_timeout", c.GrainIdleTimeout}, {"cluster.resolve_timeout", c.ResolveTimeout},
	} {
		if d.v <= 0 {
			return backends.Invalid(d.field, d.v, "must be positive")
		}
	}
	return nil
}

// splitHostPort parses host:port; with hostOnly, a bare host is accepted
// (port 0).
func splitHostPort(field, addr string, hostOnly bool) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		if hostOnly && addr != "" {
			if _, _, err2 := net.SplitHostPort(addr + ":0"); err2 == nil {
				return addr, 0, nil
			}
		}
		return "", 0, backends.Invalid(field, addr, "not host:port")
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, backends.Invalid(field, addr, "port must be 0-65535")
	}
	if host == "" {
		return "", 0, backends.Invalid(field, addr, "needs a host (e.g. 127.0.0.1)")
	}
	return host, port, nil
}

// Option configures a Node.
type Option func(*options)

type options struct {
	logger         *slog.Logger
	runtime        []runtime.Option
	onRegistration func(backends.RegistrationEvent)
}

// WithRegistrationHook calls f (one call at a time) when the member's own
// registration is lost or restored — the self-healing of discovery at
// work.
func WithRegistrationHook(f func(backends.RegistrationEvent)) Option {
	return func(o *options) { o.onRegistration = f }
}

// WithLogger sends the node's logs — the runtime's, protoactor's and the
// membership's — to l. Default: nothing is printed.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRuntimeOptions passes options to the member's runtime.Node (for
// example embedded.Option() for the embedded etcd default). The cluster
// sets the logger and the actor system itself.
func WithRuntimeOptions(opts ...runtime.Option) Option {
	return func(o *options) { o.runtime = append(o.runtime, opts...) }
}
