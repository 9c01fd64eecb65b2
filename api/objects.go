package api

import "time"

// Instance states, as the JSON output and the CLI show them.
const (
	StatePending  = "pending"  // not yet placed, or placed and not yet picked up by its node
	StateStarting = "starting" // its node is starting it
	StateRunning  = "running"
	StateStopping = "stopping"
	StateStopped  = "stopped"
	StateFailed   = "failed"
)

// Instance health values.
const (
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
	HealthUnknown   = "unknown"
)

// Node states.
const (
	NodeReady    = "ready"
	NodeDown     = "down"
	NodeDraining = "draining"
)

// Desired states of an instance, set by the controller.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// DefaultTenant owns what the operator makes without naming a tenant; it
// has no quota, and its images are every tenant's to use.
const DefaultTenant = "default"

// AllTenants, as a tenant to list, lists every tenant's objects (the
// operator's ?tenant=*).
const AllTenants = "*"

// Service is a deployed service model and its rollout status.
type Service struct {
	Name      string       `json:"name"`
	Tenant    string       `json:"tenant"`
	Version   int          `json:"version"` // increments when a deploy changes the model (not only instance counts) and on a rollback; never on a scale
	Spec      ServiceSpec  `json:"spec"`
	Status    string       `json:"status"` // ServiceStable, ServiceUpgrading, ServiceHalted, ServiceDeleting
	Message   string       `json:"message,omitempty"`
	Upgrade   *Upgrade     `json:"upgrade,omitempty"`
	Roles     []RoleStatus `json:"roles,omitempty"`
	CreatedAt time.Time    `json:"createdAt"`
	UpdatedAt time.Time    `json:"updatedAt"`
}

// Service statuses.
const (
	ServiceStable    = "stable"    // every instance runs the current version (or is being placed)
	ServiceUpgrading = "upgrading" // a rolling upgrade walks the update domains
	ServiceHalted    = "halted"    // an update domain did not become healthy; roll back or deploy again
	ServiceDeleting  = "deleting"
)

// Upgrade is the progress of a rolling upgrade.
type Upgrade struct {
	FromVersion int       `json:"fromVersion"`
	ToVersion   int       `json:"toVersion"`
	Domain      int       `json:"domain"`  // the update domain being upgraded now
	Domains     int       `json:"domains"` // how many there are
	StartedAt   time.Time `json:"startedAt"`
}

// RoleStatus counts a role's instances.
type RoleStatus struct {
	Name    string `json:"name"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
	Healthy int    `json:"healthy"`
	Pending int    `json:"pending"`
	Status  string `json:"status"` // RoleStable, RoleUpdating, RoleDegraded, RoleFailing
}

// Role statuses, from the role's instances of the current version.
const (
	RoleStable = "stable" // as many healthy instances as desired, none of an older version
	// RoleUpdating: instances of an older version are still live, or an
	// instance of the current version is starting for the first time.
	RoleUpdating = "updating"
	// RoleDegraded: fewer healthy instances than desired otherwise (an
	// instance cannot be placed, or one that ran restarts).
	RoleDegraded = "degraded"
	// RoleFailing: no instance is healthy and every placed one has failed
	// FailingAfter starts in a row (see Instance.FailedStarts): the role
	// cannot start as deployed, and waiting will not help.
	RoleFailing = "failing"
)

// A run of an instance that fails to start, or ends less than
// FailFastWindow after it started (healthy or not), is a failed start; a
// role whose placed instances all have FailingAfter of them in a row is
// failing.
const (
	FailFastWindow = 10 * time.Second
	FailingAfter   = 3
)

// Instance is one running copy of a role, placed on a node.
type Instance struct {
	ID           string         `json:"id"`
	Tenant       string         `json:"tenant"`
	Service      string         `json:"service"`
	Role         string         `json:"role"`
	Slot         int            `json:"slot"` // the role's instance index; stable across restarts, moves and upgrades
	Node         string         `json:"node"` // empty while pending
	UpdateDomain int            `json:"updateDomain"`
	FaultDomain  string         `json:"faultDomain,omitempty"`
	Version      int            `json:"version"` // the service version whose role template this instance runs
	Desired      string         `json:"desired"` // DesiredRunning | DesiredStopped
	Draining     bool           `json:"draining,omitempty"`
	State        string         `json:"state"`
	Health       string         `json:"health"`
	Address      string         `json:"address,omitempty"` // host:port of its first endpoint, or its host
	Ports        map[string]int `json:"ports,omitempty"`   // endpoint name -> port on the node
	// PrivateAddress is the instance's address on its role's network,
	// its slot's for as long as the slot exists.
	PrivateAddress string `json:"privateAddress,omitempty"`
	Restarts       int    `json:"restarts"`
	// LastError is why the instance last failed to start, exited or was
	// killed for failing its probe, kept while it restarts; empty when it
	// never failed on its node.
	LastError string `json:"lastError,omitempty"`
	// FailedStarts counts the instance's last runs in a row that failed to
	// start or ended within api.FailFastWindow of starting (see RoleFailing).
	FailedStarts int `json:"failedStarts,omitempty"`
	// Incarnation counts reimages: a node that sees it grow starts the
	// instance again from its package or image, throwing away what it wrote.
	Incarnation int `json:"incarnation,omitempty"`
	// Migration is the live migration in progress, if any; LastMigration
	// how the last one ended.
	Migration     *Migration       `json:"migration,omitempty"`
	LastMigration *MigrationResult `json:"lastMigration,omitempty"`
	// Scheduled is the stop, upgrade or relocation the fabric announced to
	// the instance (its metadata service shows it), waiting for its time
	// or the instance's acknowledgement.
	Scheduled *ScheduledEvent `json:"scheduled,omitempty"`
	Message   string          `json:"message,omitempty"` // why it is pending or failed
	// Extensions is how each of the role's extensions fares here.
	Extensions []ExtensionStatus `json:"extensions,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
}

// Migration is a live migration of a vm instance from one node to another:
// the destination starts a copy waiting for the VM (its assignment says
// Incoming) and reports where it listens; the source then sends the
// running VM there and reports how it went.
type Migration struct {
	ID      string    `json:"id"` // one attempt
	From    string    `json:"from"`
	To      string    `json:"to"`
	URI     string    `json:"uri,omitempty"` // where the destination listens, once it does
	Started time.Time `json:"started"`
	// Ports are the instance's ports on the destination.
	Ports map[string]int `json:"ports,omitempty"`
}

// MigrationResult is how a live migration ended.
type MigrationResult struct {
	ID       string        `json:"id"`
	From     string        `json:"from,omitempty"`
	To       string        `json:"to,omitempty"`
	Total    time.Duration `json:"total"`    // from its start to the VM running on the destination
	Downtime time.Duration `json:"downtime"` // how long the guest was paused
	Error    string        `json:"error,omitempty"`
	Ended    time.Time     `json:"ended,omitzero"`
}

// Node is a machine running `weft agent`.
type Node struct {
	Name          string            `json:"name"`
	Address       string            `json:"address"` // the agent's own API (logs, exec): http://host:port
	Host          string            `json:"host"`    // where instances' ports are reachable, e.g. 127.0.0.1
	State         string            `json:"state"`   // NodeReady | NodeDown | NodeDraining
	FaultDomain   string            `json:"faultDomain"`
	Capacity      Resources         `json:"capacity"`
	Allocated     Resources         `json:"allocated"`
	Runtimes      []string          `json:"runtimes"`
	Attributes    map[string]string `json:"attributes,omitempty"` // e.g. "vm.accel": "kvm" | "tcg"
	Instances     int               `json:"instances"`
	Version       string            `json:"version,omitempty"` // weft build
	LastHeartbeat time.Time         `json:"lastHeartbeat"`
	RegisteredAt  time.Time         `json:"registeredAt"`
	// RevokedBefore: the servers refuse this node's certificates issued
	// before then (weft node revoke); it rejoins with the join token.
	RevokedBefore time.Time `json:"revokedBefore,omitzero"`
}

// Resources is an amount of CPU and memory.
type Resources struct {
	CPU    float64 `json:"cpu"`
	Memory Bytes   `json:"memory"`
}

// Event is something the fabric did or saw.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`            // info | warn | error
	Type     string    `json:"type"`             // e.g. instance.placed, instance.restarted, node.down, upgrade.halted
	Tenant   string    `json:"tenant,omitempty"` // the tenant whose object it is about; empty for nodes
	Service  string    `json:"service,omitempty"`
	Role     string    `json:"role,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message"`
}

// Package is an uploaded role package: a gzip-compressed tar of a folder,
// stored content-addressed.
type Package struct {
	Digest string `json:"digest"` // "sha256:<hex>" of the compressed bytes
	Size   int64  `json:"size"`
}

// StorageAccount is an account of the storage service. Its keys are shown
// only by the keys verb (StorageAccountKeys).
type StorageAccount struct {
	Name      string            `json:"name"`
	Tenant    string            `json:"tenant"`
	Endpoints map[string]string `json:"endpoints"` // blob, queue, table base URLs (path-style)
	CreatedAt time.Time         `json:"createdAt"`
}

// StorageAccountKeys are an account's two keys (base64), either accepted.
type StorageAccountKeys struct {
	Name             string `json:"name"`
	Key1             string `json:"key1"`
	Key2             string `json:"key2"`
	ConnectionString string `json:"connectionString"`
}

// CreateStorageAccount is the body of POST /v1/storage/accounts.
type CreateStorageAccount struct {
	Name string `json:"name"`
}

// StoragePlacement is where the storage service's data lives across the
// controller servers (GET /v1/storage/config, `weft operator storage`).
// Before the first primary is chosen its Config has Epoch 0; with every
// server running without storage Members is empty too.
type StoragePlacement struct {
	Config  StorageConfig   `json:"config"`
	Members []StorageMember `json:"members"` // sorted by name
}

// StorageConfig names the storage primary and the in-sync set: the
// members that hold every acknowledged write, of which only these can
// take over from the primary.
type StorageConfig struct {
	Epoch   uint64   `json:"epoch"` // grows whenever Primary changes; the first is 1
	Primary string   `json:"primary"`
	InSync  []string `json:"inSync"` // always includes Primary; sorted
}

// StorageInSyncChange is the body of POST /v1/storage/insync, between
// servers: Op "add" or "drop" changes the in-sync set of Epoch by Name,
// "restart" starts a new epoch with Name, the primary of Epoch, alone in
// it. A stale Epoch is refused as CodeConflict.
type StorageInSyncChange struct {
	Epoch uint64 `json:"epoch"`
	Name  string `json:"name"`
	Op    string `json:"op"`
}

// StorageMember is a server that runs the storage service, as it
// registered itself.
type StorageMember struct {
	Name  string `json:"name"`
	API   string `json:"api"`  // the server's API base URL (https://host:7070); replication requests go there
	Blob  string `json:"blob"` // base URLs of its storage services, e.g. http://10.0.0.2:10000
	Queue string `json:"queue"`
	Table string `json:"table"`
}
