// Package api holds Weft's REST wire types, the service model and the error
// vocabulary shared by the controller, the agents, the CLI and the portal.
//
// It imports only the standard library: every other part of Weft depends on it,
// and it depends on nothing.
package api

import (
	"fmt"
	"strings"
)

// Role kinds.
const (
	KindWeb    = "web"
	KindWorker = "worker"
	KindVM     = "vm"
)

// Runtimes a node may offer.
const (
	RuntimeProcess   = "process"
	RuntimeContainer = "container"
	RuntimeVM        = "vm"
)

// Persistence settings.
const (
	Ephemeral  = "ephemeral"
	Persistent = "persistent"
)

// Endpoint protocols.
const (
	ProtocolHTTP = "http"
	ProtocolTCP  = "tcp"
)

// DefaultUpgradeDomains is used when a service model does not set upgradeDomains.
const DefaultUpgradeDomains = 5

// ServiceSpec is the service model a user deploys (YAML on the command line,
// JSON on the wire). See shared/DESIGN.md and docs/service-model.md.
type ServiceSpec struct {
	Name           string     `json:"name" yaml:"name"`
	UpgradeDomains int        `json:"upgradeDomains,omitempty" yaml:"upgradeDomains,omitempty"`
	Roles          []RoleSpec `json:"roles" yaml:"roles"`
}

// RoleSpec is one role of a service: the template its instances are made from
// and how many of them the fabric keeps running.
type RoleSpec struct {
	Name    string   `json:"name" yaml:"name"`
	Kind    string   `json:"kind" yaml:"kind"`
	Runtime string   `json:"runtime" yaml:"runtime"`
	Package string   `json:"package,omitempty" yaml:"package,omitempty"` // a folder in YAML; "sha256:<hex>" on the wire
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	Image   string   `json:"image,omitempty" yaml:"image,omitempty"`
	// ImageDigest is set by the controller when it accepts a deployment: the
	// digest of the image Image named then, so a changed image is an upgrade.
	ImageDigest string `json:"imageDigest,omitempty" yaml:"-"`
	// AutoUpgrade (vm roles): Image is NAME:VERSION, and when a newer
	// NAME:VERSION is published the controller rolls the role onto it
	// by update domain, as a deploy would (see ImageVersion).
	AutoUpgrade bool              `json:"autoUpgrade,omitempty" yaml:"autoUpgrade,omitempty"`
	Instances   int               `json:"instances" yaml:"instances"`
	Size        Size              `json:"size,omitempty" yaml:"size,omitempty"`
	Persistence string            `json:"persistence,omitempty" yaml:"persistence,omitempty"`
	Endpoints   []Endpoint        `json:"endpoints,omitempty" yaml:"endpoints,omitempty"`
	Health      *HealthCheck      `json:"health,omitempty" yaml:"health,omitempty"`
	Settings    map[string]string `json:"settings,omitempty" yaml:"settings,omitempty"`
	// Disks are a persistent vm role's disks, OS disk first; `weft vm create`
	// makes them (they are not part of YAML service models yet).
	Disks []DiskSpec `json:"disks,omitempty" yaml:"-"`
	// Drives are the role's drives: every instance slot has its own drive
	// of each (SlotDriveName), made when the slot first is, kept across
	// restarts, upgrades, moves and scaling down, deleted with the service.
	Drives []RoleDrive `json:"drives,omitempty" yaml:"drives,omitempty"`
	// Network is the tenant's virtual network (weft network) the role's
	// instances join, each with a stable private address from Subnet (a
	// subnet's name; empty: the network's first).
	Network string `json:"network,omitempty" yaml:"network,omitempty"`
	Subnet  string `json:"subnet,omitempty" yaml:"subnet,omitempty"`
	// LiveSettings makes a change of Settings reach running instances
	// through the metadata service, without replacing them.
	LiveSettings bool `json:"liveSettings,omitempty" yaml:"liveSettings,omitempty"`
	// OnStop is run inside an instance before the fabric stops it, ahead
	// of SIGTERM; it may take up to StopGrace.
	OnStop []string `json:"onStop,omitempty" yaml:"onStop,omitempty"`
	// StopNotice is how long before the fabric stops, upgrades or moves an
	// instance the scheduled event is shown to it; 0 stops at once.
	StopNotice Duration `json:"stopNotice,omitempty" yaml:"stopNotice,omitempty"`
	// StopExtension is how much more time an instance may ask for, once,
	// for a scheduled event; 0 refuses such requests.
	StopExtension Duration `json:"stopExtension,omitempty" yaml:"stopExtension,omitempty"`
	// StopGrace is the time from SIGTERM to SIGKILL (and the most OnStop
	// may take); 0 is the node's default (10s).
	StopGrace Duration `json:"stopGrace,omitempty" yaml:"stopGrace,omitempty"`
	// Extensions are run in every instance of the role by its node's
	// agent (see ExtensionRef).
	Extensions []ExtensionRef `json:"extensions,omitempty" yaml:"extensions,omitempty"`
}

// RunsOnce reports whether an instance of the role must never run on two
// nodes at a time: a persistent one, or one with drives. Its node stops it
// when cut off from the controllers, which start it elsewhere only once
// that node has had time to (see api.HeartbeatReply.Fence).
func (r RoleSpec) RunsOnce() bool { return r.Persistence == Persistent || len(r.Drives) > 0 }

// RoleDrive is one drive of each of a role's instances.
type RoleDrive struct {
	Name string `json:"name" yaml:"name"`
	Size Bytes  `json:"size" yaml:"size"`
	// Mount is where a container instance sees the drive; a process
	// instance finds its drive's folder in WEFT_DRIVE_<NAME> (DriveEnv).
	Mount string `json:"mount,omitempty" yaml:"mount,omitempty"`
}

// SlotDriveName is the name of the drive the instances of a role's slot
// mount as name: SERVICE-ROLE-SLOT-NAME, one of the tenant's drives.
func SlotDriveName(service, role string, slot int, name string) string {
	return fmt.Sprintf("%s-%s-%d-%s", service, role, slot, name)
}

// DriveEnv is the variable holding the folder a process instance's drive
// is mounted on: WEFT_DRIVE_DATA for the drive named data.
func DriveEnv(name string) string {
	return "WEFT_DRIVE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Size is what one instance reserves on its node.
type Size struct {
	CPU    float64 `json:"cpu,omitempty" yaml:"cpu,omitempty"`       // cores, e.g. 0.25
	Memory Bytes   `json:"memory,omitempty" yaml:"memory,omitempty"` // "128Mi" in YAML and JSON
}

// Endpoint is a port a role listens on. For web roles (and VM roles) the
// load balancer publishes Port on the controller's host and forwards to the
// port each instance was given in WEFT_PORT_<NAME>.
type Endpoint struct {
	Name     string `json:"name" yaml:"name"`
	Protocol string `json:"protocol,omitempty" yaml:"protocol,omitempty"` // http (default) | tcp
	Port     int    `json:"port" yaml:"port"`
	// GuestPort is, for the vm runtime, the port inside the guest the
	// endpoint forwards to; 0 means the port given in WEFT_PORT_<NAME>.
	GuestPort int `json:"guestPort,omitempty" yaml:"guestPort,omitempty"`
}

// HealthCheck is how the node agent probes an instance. Exactly one of HTTP,
// TCP and Exec is set.
type HealthCheck struct {
	HTTP     *HTTPProbe `json:"http,omitempty" yaml:"http,omitempty"`
	TCP      *TCPProbe  `json:"tcp,omitempty" yaml:"tcp,omitempty"`
	Exec     []string   `json:"exec,omitempty" yaml:"exec,omitempty"`
	Interval Duration   `json:"interval,omitempty" yaml:"interval,omitempty"` // default 1s
	Timeout  Duration   `json:"timeout,omitempty" yaml:"timeout,omitempty"`   // default 1s
	Failures int        `json:"failures,omitempty" yaml:"failures,omitempty"` // default 3
}

// HTTPProbe expects a 2xx or 3xx answer to GET Path on the named endpoint.
type HTTPProbe struct {
	Path     string `json:"path" yaml:"path"`
	Endpoint string `json:"endpoint" yaml:"endpoint"`
}

// TCPProbe expects a TCP connection to the named endpoint to open.
type TCPProbe struct {
	Endpoint string `json:"endpoint" yaml:"endpoint"`
}
