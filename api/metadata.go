package api

import "time"

// The instance metadata service: every instance asks its node's agent who
// it is, at the URL in WEFT_METADATA, with its own token:
//
//	GET  /metadata/instance         -> InstanceMetadata
//	GET  /metadata/scheduledevents  -> ScheduledEvents
//	POST /metadata/scheduledevents  ScheduledEventAction -> ScheduledEvent
//
// Each request carries the header "Metadata: true" and
// "Authorization: Bearer $WEFT_METADATA_TOKEN"; the token names the
// instance, so an instance only ever gets its own answers.
const (
	EnvMetadata      = "WEFT_METADATA"
	EnvMetadataToken = "WEFT_METADATA_TOKEN"
	MetadataHeader   = "Metadata"
)

// InstanceMetadata is what an instance learns about itself.
type InstanceMetadata struct {
	ID           string `json:"id"`
	Tenant       string `json:"tenant"`
	Service      string `json:"service"`
	Role         string `json:"role"`
	Node         string `json:"node"`
	FaultDomain  string `json:"faultDomain"`
	UpdateDomain int    `json:"updateDomain"`
	Version      int    `json:"version"`
	// Endpoints are the instance's own, with the port it listens on.
	Endpoints []MetadataEndpoint `json:"endpoints"`
	// Peers are the role's instances, this one included.
	Peers []Peer `json:"peers"`
	// Settings are the role's settings as they are now: for a role with
	// liveSettings, newer than the environment the instance started with.
	Settings map[string]string `json:"settings"`
}

// MetadataEndpoint is one endpoint of an instance.
type MetadataEndpoint struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`             // where the instance listens
	Public   int    `json:"public,omitempty"` // the load balancer's port, for published roles
}

// Peer is an instance of a role as its fellow instances see it.
type Peer struct {
	ID           string         `json:"id"`
	Node         string         `json:"node,omitempty"`
	Host         string         `json:"host,omitempty"` // where its ports are reachable
	Ports        map[string]int `json:"ports,omitempty"`
	FaultDomain  string         `json:"faultDomain,omitempty"`
	UpdateDomain int            `json:"updateDomain"`
	State        string         `json:"state"`
	Health       string         `json:"health"`
}

// Scheduled event types.
const (
	EventStop     = "Stop"     // scale-in, role removed, service deleted
	EventUpgrade  = "Upgrade"  // replaced by an instance of the new version
	EventRelocate = "Relocate" // replaced on another node (node drain)
	// EventSettings: the role's live settings changed; the new values are
	// in /metadata/instance. Nothing waits for it.
	EventSettings = "SettingsChanged"
)

// Scheduled event statuses.
const (
	EventScheduled = "Scheduled" // NotBefore is ahead
	EventStarted   = "Started"   // the fabric goes ahead
)

// ScheduledEvent is something the fabric will do to an instance, shown to
// it first.
type ScheduledEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Instance  string    `json:"instance"`
	Status    string    `json:"status,omitempty"`
	NotBefore time.Time `json:"notBefore"`
	// Acknowledged: the instance said it may go ahead now.
	Acknowledged bool `json:"acknowledged,omitempty"`
	// Extended: the instance asked for more time (once).
	Extended bool `json:"extended,omitempty"`
}

// ScheduledEvents is the answer of /metadata/scheduledevents.
// Incarnation changes whenever the list does.
type ScheduledEvents struct {
	Incarnation uint64           `json:"incarnation"`
	Events      []ScheduledEvent `json:"events"`
}

// Actions an instance may take on a scheduled event.
const (
	ActionAcknowledge = "acknowledge" // go ahead now
	ActionExtend      = "extend"      // once: NotBefore moves by the role's stopExtension
)

// ScheduledEventAction is an instance's answer to one of its events; the
// agent forwards it to the controller with the instance's ID.
type ScheduledEventAction struct {
	Instance string `json:"instance,omitempty"`
	EventID  string `json:"eventId"`
	Action   string `json:"action"`
}
