package api

import "time"

// The protocol between a node agent and the controller:
//
//	PUT  /v1/nodes/{name}              NodeRegistration -> Node      (on start; idempotent)
//	POST /v1/nodes/{name}/heartbeat    Heartbeat -> HeartbeatReply    (every heartbeat interval)
//	GET  /v1/nodes/{name}/assignments?index=N&wait=30s -> Assignments (blocking query)
//	GET  /v1/packages/{digest}         -> the package bytes
//	POST /v1/nodes/{name}/scheduledevents  ScheduledEventAction -> ScheduledEvent
//
// A heartbeat carries the status of every instance the agent runs, and the
// events it saw since the last one. The controller writes to its store only
// when a status changed, so steady heartbeats cost no disk writes.

// NodeRegistration is what an agent says about its node when it starts.
type NodeRegistration struct {
	Name        string            `json:"name"`
	Address     string            `json:"address"` // the agent's own API, http://host:port
	Host        string            `json:"host"`    // host where instance ports are reachable
	FaultDomain string            `json:"faultDomain"`
	Capacity    Resources         `json:"capacity"`
	Runtimes    []string          `json:"runtimes"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Version     string            `json:"version,omitempty"`
	// APIToken is the bearer token the agent's own API (logs, exec)
	// takes from the servers. The servers keep it and never show it.
	APIToken string `json:"apiToken,omitempty"`
}

// Heartbeat is the periodic report of a node agent.
type Heartbeat struct {
	Instances []InstanceStatus `json:"instances"`
	Events    []Event          `json:"events,omitempty"`
}

// InstanceStatus is the actual state of one instance on its node.
type InstanceStatus struct {
	ID       string         `json:"id"`
	State    string         `json:"state"`  // StateStarting, StateRunning, StateStopping, StateStopped, StateFailed
	Health   string         `json:"health"` // HealthHealthy, HealthUnhealthy, HealthUnknown
	Ports    map[string]int `json:"ports,omitempty"`
	Restarts int            `json:"restarts"`
	Message  string         `json:"message,omitempty"`
	// LastError and FailedStarts are as in Instance.
	LastError    string    `json:"lastError,omitempty"`
	FailedStarts int       `json:"failedStarts,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitempty"`
	// Incoming is where a migration's destination copy listens (its
	// assignment said Incoming), for the migration MigrationID.
	Incoming    string `json:"incoming,omitempty"`
	MigrationID string `json:"migrationId,omitempty"`
	// Migrated is the source's report of a migration it carried out.
	Migrated *MigrationResult `json:"migrated,omitempty"`
	// Extensions is how each of the instance's extensions fares.
	Extensions []ExtensionStatus `json:"extensions,omitempty"`
}

// HeartbeatReply tells the agent how the controller sees it. When Known is
// false the controller has no registration for the node (it was removed, or
// the controller lost it): the agent registers again.
type HeartbeatReply struct {
	Known bool   `json:"known"`
	State string `json:"state"` // the node's state as the controller sees it
	Index uint64 `json:"index"` // the assignments index; the agent fetches assignments when it moved
	// Interval is how often the node is to report from now on: it grows
	// with the fleet, so that the heartbeats the controller takes stay
	// bounded. Zero: the agent keeps its own.
	Interval Duration `json:"interval,omitempty"`
	// Fence is how long an agent that reaches no server may keep its
	// persistent instances running: the controller starts them elsewhere
	// only some time after that (it declares the node down sooner, after
	// its heartbeat TTL, and replaces the ephemeral ones then).
	Fence Duration `json:"fence,omitempty"`
}

// Assignments is the full set of instances the controller wants on a node.
// Anything the agent runs that is not listed, it stops.
type Assignments struct {
	Index     uint64       `json:"index"`
	Instances []Assignment `json:"instances"`
	// Networks are the virtual networks of the node's instances, each
	// with every member in the cluster.
	Networks []NodeNetwork `json:"networks,omitempty"`
	// VPNs are the VPN gateways the node runs; each one's network is in
	// Networks.
	VPNs []NodeVPN `json:"vpns,omitempty"`
}

// Assignment is one instance a node must run (or stop), with the role
// template of the instance's version.
type Assignment struct {
	Instance Instance `json:"instance"`
	Role     RoleSpec `json:"role"`
	// Disks give access to a persistent instance's disks (Role.Disks).
	Disks []DiskAccess `json:"disks,omitempty"`
	// Drives give access to the drives of the instance's slot, one for
	// each of Role.Drives, named as there (not SlotDriveName).
	Drives []DiskAccess `json:"drives,omitempty"`
	// Incoming asks the node to start the instance as the destination of
	// Instance.Migration: waiting for the running VM, not booting it.
	Incoming bool `json:"incoming,omitempty"`
	// PeersVersion changes when the role's instances (this one
	// included) change, which the node reads for the instance's metadata
	// service (GET /v1/nodes/{name}/peers/{instance}) when it needs them.
	// They are not sent with every assignment: a role of n instances
	// would send n² peers to its nodes on each change.
	PeersVersion string `json:"peersVersion,omitempty"`
	// Network puts the instance on its role's virtual network (nil: on
	// none); Assignments.Networks says where the network's other members
	// run.
	Network *NetworkAttachment `json:"network,omitempty"`
}
