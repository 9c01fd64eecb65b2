package api

import "time"

// The persistent VM API (IaaS). A persistent VM is a service of one role
// (named VMRole) with one persistent vm instance whose disks are page blobs
// in the storage service, so they outlive any node:
//
//	POST   /v1/vms                 CreateVM -> VM
//	GET    /v1/vms                 -> []VM
//	GET    /v1/vms/{name}          -> VM
//	POST   /v1/vms/{name}/start    -> VM
//	POST   /v1/vms/{name}/stop     -> VM (the instance stops; its disks stay)
//	DELETE /v1/vms/{name}          -> 204 (disks deleted once the VM stopped)
//	GET    /v1/vms/{name}/extensions               -> []VMExtension
//	PUT    /v1/vms/{name}/extensions/{extension}   SetVMExtension -> VMExtension
//	DELETE /v1/vms/{name}/extensions/{extension}   -> 204

// VMRole is the name of a persistent VM's one role.
const VMRole = "vm"

// IsVM reports whether the service is a persistent VM (weft vm create): one
// persistent role named VMRole.
func (s ServiceSpec) IsVM() bool {
	return len(s.Roles) == 1 && s.Roles[0].Name == VMRole && s.Roles[0].Persistence == Persistent
}

// DiskSpec is one disk of a persistent vm role.
type DiskSpec struct {
	Name string `json:"name"` // "os", "data1", ...
	Size Bytes  `json:"size"`
	Blob string `json:"blob"` // the page blob holding it, in the system account's "disks" container
	// Endpoint is the blob service of the server whose storage holds the
	// page blob (e.g. http://10.0.0.1:10000), the one that led when the
	// disk was made; empty for disks made before it was recorded, which
	// the leading server's storage is taken to hold.
	Endpoint string `json:"endpoint,omitempty"`
}

// DiskAccess is what a node needs to serve one disk of an instance it
// runs: where the page blob is and a SAS for it alone.
type DiskAccess struct {
	Name         string `json:"name"`
	Size         int64  `json:"size"`
	BlobEndpoint string `json:"blobEndpoint"` // e.g. http://10.0.0.1:10000 (no account)
	// BlobEndpoints are the other servers' storage, which replicates the
	// same data: tried in turn when BlobEndpoint cannot be reached.
	BlobEndpoints []string `json:"blobEndpoints,omitempty"`
	Account       string   `json:"account"`
	Container     string   `json:"container"`
	Blob          string   `json:"blob"`
	SAS           string   `json:"sas"` // a query string
}

// VMPort publishes a guest port on the load balancer.
type VMPort struct {
	Name       string `json:"name"`
	GuestPort  int    `json:"guestPort"`
	PublicPort int    `json:"publicPort"`
}

// CreateVM is the body of POST /v1/vms.
type CreateVM struct {
	Name      string   `json:"name"`
	Image     string   `json:"image"`
	CPUs      float64  `json:"cpus"`
	Memory    Bytes    `json:"memory"`
	Disk      Bytes    `json:"disk"`                // the OS disk; at least the image's disk size (default: that size)
	DataDisks []Bytes  `json:"dataDisks,omitempty"` // empty disks
	Ports     []VMPort `json:"ports,omitempty"`
	// Network is a virtual network of the tenant the VM joins (its first
	// subnet), with a private address it keeps until it is deleted.
	Network string `json:"network,omitempty"`
}

// VM is a persistent VM as `weft vm list|show` shows it.
type VM struct {
	Name     string     `json:"name"`
	Tenant   string     `json:"tenant"`
	Image    string     `json:"image"`
	CPUs     float64    `json:"cpus"`
	Memory   Bytes      `json:"memory"`
	Disks    []DiskSpec `json:"disks"`
	Ports    []VMPort   `json:"ports,omitempty"`
	Running  bool       `json:"running"` // wanted running (start) or stopped (stop)
	State    string     `json:"state"`   // the instance's state, "stopped" when there is none
	Health   string     `json:"health"`
	Node     string     `json:"node,omitempty"`
	Instance string     `json:"instance,omitempty"`
	Address  string     `json:"address,omitempty"`
	// Network and PrivateAddress: the virtual network the VM is on and
	// its address there, kept across restarts, relocation and migration.
	Network        string    `json:"network,omitempty"`
	PrivateAddress string    `json:"privateAddress,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	// Migration is the live migration in progress; LastMigration the last
	// one's outcome.
	Migration     *Migration       `json:"migration,omitempty"`
	LastMigration *MigrationResult `json:"lastMigration,omitempty"`
	// Extensions are the VM's extensions and how each fares.
	Extensions []VMExtension `json:"extensions,omitempty"`
}

// SetVMExtension is the body of PUT /v1/vms/{name}/extensions/{extension}:
// it adds the extension to the VM or replaces its version and settings.
// ProtectedSettings left out keep the ones set before.
type SetVMExtension struct {
	Version           string         `json:"version,omitempty"` // empty: the newest
	Settings          map[string]any `json:"settings,omitempty"`
	ProtectedSettings map[string]any `json:"protectedSettings,omitempty"`
}

// VMExtension is one extension of a VM: what is set, never its protected
// settings, and how it fares in the guest (no Status until the guest
// agent reported it).
type VMExtension struct {
	Name     string         `json:"name"`
	Version  string         `json:"version"`
	Settings map[string]any `json:"settings,omitempty"`
	// Protected says whether it has protected settings.
	Protected bool             `json:"protected,omitempty"`
	Status    *ExtensionStatus `json:"status,omitempty"`
}

// ResizeVM is the body of POST /v1/vms/{name}/resize; zero fields keep
// their value.
type ResizeVM struct {
	CPUs   float64 `json:"cpus,omitempty"`
	Memory Bytes   `json:"memory,omitempty"`
}

// AttachDisk is the body of POST /v1/vms/{name}/disks.
type AttachDisk struct {
	Size Bytes `json:"size"`
}

// MigrateVM is the body of POST /v1/vms/{name}/migrate.
type MigrateVM struct {
	To string `json:"to,omitempty"` // a node; empty lets the fabric choose
}
