package api

// Plan is what deploying a model would change, as the controller works it
// out without changing anything (POST /v1/services/{name}/plan). It makes
// the checks a deploy makes, so a model whose plan is refused is refused by
// the deploy too, with the same error.
type Plan struct {
	Service string `json:"service"`
	// Create: the tenant has no service of this name; deploying makes it.
	Create bool `json:"create,omitempty"`
	// Version is the stored version (0 with Create), NewVersion the one the
	// deploy makes: the same when nothing but instance counts change.
	Version    int `json:"version"`
	NewVersion int `json:"newVersion"`
	// Changes are the model's changed fields outside its roles
	// (upgradeDomains).
	Changes []FieldChange `json:"changes,omitempty"`
	// Roles are the new model's roles in its order, then the removed ones.
	Roles []RolePlan `json:"roles"`
	// Domains is how many update domains hold instances after the deploy:
	// the N of "update domain 2 of N" while it rolls.
	Domains int `json:"domains"`
}

// Actions of a RolePlan.
const (
	PlanCreate  = "create"  // a new role: its instances start
	PlanDestroy = "destroy" // a removed role: its instances stop
	PlanUpdate  = "update"  // its template changes: its instances are replaced, one update domain at a time
	PlanScale   = "scale"   // only its instance count changes: other instances are left alone
	PlanNone    = "none"
)

// RolePlan is what a deploy does to one role.
type RolePlan struct {
	Name   string `json:"name"`
	Action string `json:"action"` // PlanCreate, PlanDestroy, PlanUpdate, PlanScale or PlanNone
	// From and To are the role's instance counts before and after (0 for a
	// role that does not exist on that side).
	From int `json:"from"`
	To   int `json:"to"`
	// Changes are the template's changed fields (PlanUpdate).
	Changes []FieldChange `json:"changes,omitempty"`
	// Restarts are the live instances the rolling upgrade replaces, by
	// update domain, in the order it walks them.
	Restarts []DomainRestarts `json:"restarts,omitempty"`
	// Stops are the instances that stop without a replacement: the slots
	// a smaller count drops, or every instance of a removed role.
	Stops []string `json:"stops,omitempty"`
	// MakesDrives are the drives of the role's slots the deploy makes
	// (RoleSpec.Drives), KeepsDrives those it finds and keeps.
	MakesDrives []string `json:"makesDrives,omitempty"`
	KeepsDrives []string `json:"keepsDrives,omitempty"`
}

// FieldChange is one changed field: its path in the model's JSON
// ("settings.VERSION", "endpoints[0].port") and its old and new values as
// JSON, "" on the side where it is absent.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// DomainRestarts are the instances of one update domain (numbered from 0)
// that a rolling upgrade replaces together.
type DomainRestarts struct {
	Domain    int      `json:"domain"`
	Instances []string `json:"instances"`
}
