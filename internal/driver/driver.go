// Package driver is the contract between the node agent and a runtime
// (process, container, vm). It imports only the standard library.
//
// A driver starts, watches and stops instances. It keeps whatever it needs to
// find a running instance again in the instance's directory, so that an agent
// restarted while its instances run can Recover them without restarting them.
// Restart policy, back-off and health probing belong to the agent, not here.
package driver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"time"
)

// ErrNotFound is returned when a driver has no instance with the given ID.
var ErrNotFound = errors.New("driver: instance not found")

// Spec is everything a driver needs to start one instance.
type Spec struct {
	ID      string // instance ID; unique on the node
	Dir     string // the instance's own directory, created by the agent, kept across agent restarts
	Package string // process runtime: a directory with the unpacked package (copied into Dir/root by the agent)
	Image   string // container and vm runtimes: the image's name
	// ImageDir is the node's read-only cache of the image (container and vm
	// runtimes): api.ImageMetaFile (the api.Image record) and, for container
	// images, rootfs/ (the unpacked root filesystem); for vm images, the files
	// named in api.Image.Files (kernel, initrd, disk). Instances must never
	// write into it: it is shared by every instance of the image on the node.
	ImageDir string
	Command  []string          // what to run; for the process runtime relative to the package root
	Env      map[string]string // WEFT_* variables and the role's settings
	CPU      float64           // cores; 0 means no limit
	Memory   int64             // bytes; 0 means no limit
	// Ports the instance must listen on, by endpoint name (also in Env as WEFT_PORT_<NAME>).
	Ports map[string]int
	// GuestPorts, for the vm runtime: the port inside the guest each endpoint
	// forwards to, when it is not the same number as in Ports.
	GuestPorts map[string]int
	// Disks, for persistent vm instances: OS disk first. The vm runtime then
	// boots from Disks[0] instead of a throwaway overlay of the image's disk.
	Disks []Disk
	// Drives, for the vm runtime: the instance's drives, served as Disks
	// are, attached after the OS disk; the guest agent mounts each
	// (ext4, formatted by the agent) at its Mount before the workload
	// starts.
	Drives []Disk
	// Mounts, for the container runtime: host folders the container sees at
	// their Target (the instance's drives, mounted by the agent, and its
	// extensions, read-only).
	Mounts []Mount
	// JoinNetwork, when set, puts the instance on its virtual network: a
	// driver that gives the instance a network namespace of its own (the
	// container runtime) calls it with the namespace's path once the
	// namespace exists and before the instance's process starts; an error
	// fails the start. Drivers without such a namespace ignore it, and the
	// agent does not ask them (see agent's network.go).
	JoinNetwork func(ctx context.Context, netns string) error
	// ResolvConf, for the process runtime on a virtual network, is the
	// file the instance (and what is exec'd in it) sees at
	// /etc/resolv.conf: the network's DNS server. (The container runtime
	// gets it among Mounts.)
	ResolvConf string
	// NIC, for the vm runtime, puts the VM on its virtual network through
	// a tap device the agent made on the network's bridge; nil: none.
	NIC *NIC
}

// NIC is a VM's interface on its virtual network. The driver gives the
// VM a virtio-net device on Tap with MAC, and the guest Address and DNS;
// and Routes through Via, its network's routes when it boots (later ones
// come through Router).
type NIC struct {
	Tap     string   // the host's tap device, which QEMU opens by name
	MAC     string   // the guest's, "02:..."
	Address string   // the guest's address and the network's prefix length, "10.20.0.5/16"
	DNS     string   // the network's DNS server, the guest's only one
	Search  []string // the guest's DNS search domains
	// Routes are the networks on premises behind the network's VPN
	// gateway, Via the gateway's address on the network.
	Routes []netip.Prefix
	Via    netip.Addr
}

// Mount is a host folder an instance sees at Target.
type Mount struct {
	Source   string // on the host
	Target   string // inside the container
	ReadOnly bool
}

// Status is what a driver knows about an instance.
type Status struct {
	Running   bool
	PID       int // 0 when not running or not a host process
	StartedAt time.Time
	ExitCode  int    // valid when !Running and Exited
	Exited    bool   // the instance ran and exited (as opposed to never started)
	Reason    string // e.g. "exited with code 1", "killed by signal 9", "out of memory"
	Host      string // where its ports are reachable, when the driver knows better than the node (e.g. a VM's address)
}

// Driver runs instances of one runtime on a node.
type Driver interface {
	// Name is the runtime name: "process", "container" or "vm".
	Name() string
	// Start starts the instance and returns once it is running (not
	// necessarily healthy). Starting an ID that is already running is an error.
	Start(ctx context.Context, spec Spec) (Status, error)
	// Wait blocks until the instance exits (or ctx ends) and returns its final status.
	Wait(ctx context.Context, id string) (Status, error)
	// Stop asks the instance to stop (SIGTERM or an ACPI shutdown), waits up to
	// grace, then kills it. Stopping an instance that is not running is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Inspect reports the current status, ErrNotFound if the driver does not know id.
	Inspect(ctx context.Context, id string) (Status, error)
	// Recover finds an instance started by an earlier agent process from what
	// it left in dir. It returns ErrNotFound when nothing of it still runs, and
	// then the agent starts it anew.
	Recover(ctx context.Context, id, dir string) (Status, error)
	// Remove releases what the driver keeps for a stopped instance (cgroups,
	// overlay mounts); the agent deletes dir afterwards.
	Remove(ctx context.Context, id string) error
	// Logs returns the instance's combined stdout and stderr: at most the
	// last tail bytes (0: all that is kept), and with follow, what comes next
	// until ctx ends or the instance exits.
	Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error)
}

// Execer is implemented by drivers that can run a command inside an instance
// (the vm runtime through the guest agent, the container runtime through runc exec).
type Execer interface {
	Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (exitCode int, err error)
}

// Copier is implemented by drivers whose instances do not see the node's
// files (the vm runtime): the agent puts files in (an extension's package
// and settings) and takes them out again. CopyIn copies src, a file or a
// folder and what it holds, to dst, an absolute path in the instance,
// replacing what is there of the same names; folders it makes on the way
// are root's alone (0700), since what is copied may be secret.
// RemoveIn removes path and what is under it; a missing path is no error.
type Copier interface {
	CopyIn(ctx context.Context, id, src, dst string) error
	RemoveIn(ctx context.Context, id, path string) error
}

// GuestMonitor is implemented by drivers that can read the figures of
// an instance's guest (the vm runtime, through its guest agent): the
// built-in monitor extension samples them.
type GuestMonitor interface {
	GuestFigures(ctx context.Context, id string) (GuestFigures, error)
}

// GuestFigures are what a guest says of its CPUs, memory and root file
// system (the agent shows them as api.GuestFigures).
type GuestFigures struct {
	CPUPercent                                   float64 // all CPUs busy is 100; since the previous sample
	CPUs                                         int
	Load1                                        float64
	MemoryTotal, MemoryUsed, DiskTotal, DiskUsed int64 // bytes
	SampledAt                                    time.Time
}

// Router is implemented by drivers whose instances set up their own
// interface on a virtual network (the vm runtime, through its guest
// agent), where the agent cannot program their routes itself as it does a
// container's namespace: SetRoutes makes the routes of running instance
// id's interface on its network (Spec.NIC) exactly routes, through via
// (the network's VPN gateway); none removes them.
type Router interface {
	SetRoutes(ctx context.Context, id string, routes []netip.Prefix, via netip.Addr) error
}

// GuestServer is implemented by drivers whose instances reach the node
// agent over a private channel rather than the network (the vm runtime's
// guest agent port): requests an instance makes of its metadata service
// arrive through it. The driver calls h with the ID of the instance whose
// channel a request came in on, so the channel alone says who asks.
type GuestServer interface {
	ServeGuests(h func(id string) http.Handler)
}

// Migrator is implemented by drivers that move a running instance between
// nodes (the vm runtime's live migration): the destination node's agent
// calls StartIncoming, the source's MigrateTo sends the running instance
// there, then the destination's FinishIncoming takes it over.
type Migrator interface {
	// MigrateTo sends the instance to a destination waiting at uri. On
	// success the instance here has exited with ReasonMigrated; on failure
	// it keeps running here.
	MigrateTo(ctx context.Context, id, uri string, downtime time.Duration) (MigrationStats, error)
	// StartIncoming starts the instance waiting for a migration on listen
	// ("tcp:HOST:PORT").
	StartIncoming(ctx context.Context, spec Spec, listen string) (Status, error)
	// FinishIncoming waits for the migration to complete and the instance
	// to run here.
	FinishIncoming(ctx context.Context, id string) (Status, error)
}

// ReasonMigrated is the exit reason of an instance that migrated away.
const ReasonMigrated = "migrated"

// MigrationStats describes a completed live migration.
type MigrationStats struct {
	Total    time.Duration // from start to the instance running at the destination
	Downtime time.Duration // how long it was paused
	RAM      int64         // bytes of memory sent
}

// Describer is implemented by drivers with facts about their runtime on
// this node that users and the scheduler should see, such as
// {"vm.accel": "kvm"} or {"vm.accel": "tcg"}; they become node attributes.
type Describer interface {
	Attributes() map[string]string
}

// Disk is a block device the node agent serves to a vm instance over NBD
// (the persistent disks of persistent VMs, which live in the storage service).
type Disk struct {
	Name   string // "os", "data1", ...
	Socket string // the agent's NBD server: a unix socket path
	Export string // the NBD export name
	Size   int64
	Mount  string // a drive's: where the guest mounts it
}
