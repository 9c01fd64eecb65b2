package api

import (
	"fmt"
	"time"
)

// Tenant is a customer of the hoster: it owns services, VMs, images and
// storage accounts, which only its own tokens (and the operator) see.
type Tenant struct {
	Name  string `json:"name"`
	Quota Quota  `json:"quota"`
	// Used is what the tenant's objects take now, counted as quotas are
	// (shown by show and list; ignored on create).
	Used Usage `json:"used"`
	// Ports are the public endpoint ports the operator assigned to the
	// tenant: it may publish these, and an endpoint that asks for port 0
	// gets a free one of them. Empty: the tenant publishes no port of its
	// choosing, only ports 0 picked from the cluster's tenant range.
	Ports     PortRange `json:"ports,omitzero"`
	CreatedAt time.Time `json:"createdAt"`
}

// PortRange is the ports From..To, both included.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p int) bool { return r.From > 0 && p >= r.From && p <= r.To }

func (r PortRange) String() string {
	if r.From == 0 {
		return "none"
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Quota is what a tenant may use at once. A nil field is unlimited.
type Quota struct {
	CPU       *float64 `json:"cpu,omitempty"`       // cores of running and starting instances
	Memory    *Bytes   `json:"memory,omitempty"`    // memory of those instances
	Instances *int     `json:"instances,omitempty"` // instances of services and VMs
	VMs       *int     `json:"vms,omitempty"`       // persistent VMs, running or stopped
	Disk      *Bytes   `json:"disk,omitempty"`      // persistent VM disks and drives, by declared size
	Storage   *Bytes   `json:"storage,omitempty"`   // bytes in the tenant's storage accounts
	Endpoints *int     `json:"endpoints,omitempty"` // published (load-balanced) endpoints
}

// Usage is what a tenant's objects take, in the quota's terms.
type Usage struct {
	CPU       float64 `json:"cpu"`
	Memory    Bytes   `json:"memory"`
	Instances int     `json:"instances"`
	VMs       int     `json:"vms"`
	Disk      Bytes   `json:"disk"`
	Storage   Bytes   `json:"storage"`
	Endpoints int     `json:"endpoints"`
}

// CreateTenant is the body of POST /v1/tenants. A nil Quota gets the
// server's default quota for new tenants.
type CreateTenant struct {
	Name string `json:"name"`
	// Quota, when given, replaces the server's default quota whole (a
	// limit left out is unlimited); QuotaChanges instead changes the
	// defaults as SetQuota would. At most one of the two.
	Quota        *Quota    `json:"quota,omitempty"`
	QuotaChanges *SetQuota `json:"quotaChanges,omitempty"`
	Ports        PortRange `json:"ports,omitzero"`
}

// SetQuota is the body of PUT /v1/tenants/{name}/quota: the fields given
// replace the tenant's; Unlimited names fields to make unlimited.
type SetQuota struct {
	Quota
	Unlimited []string   `json:"unlimited,omitempty"`
	Ports     *PortRange `json:"ports,omitempty"`
}

// Access roles a token gives within its tenant, and the operator's.
const (
	AccessOwner       = "owner"       // everything in the tenant, its tokens too
	AccessContributor = "contributor" // create, change and delete the tenant's objects
	AccessReader      = "reader"      // read the tenant's objects (not keys, not exec)
	AccessOperator    = "operator"    // the hoster: every tenant and the cluster itself
)

// Token is an API token, as listed: its secret is shown once, at creation.
type Token struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant,omitempty"` // empty for operator tokens
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	Expires     time.Time `json:"expires"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy,omitempty"`
}

// CreateToken is the body of POST /v1/tokens.
type CreateToken struct {
	Tenant      string `json:"tenant,omitempty"`
	Role        string `json:"role"`
	Description string `json:"description,omitempty"`
	// Expires is a Go duration from now ("720h"); empty: DefaultTokenLifetime.
	Expires string `json:"expires,omitempty"`
}

// DefaultTokenLifetime is how long a token lives when its creator does not say.
const DefaultTokenLifetime = 30 * 24 * time.Hour

// NewToken is a created token with its secret: the only time it is shown.
type NewToken struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// SignInLink is a one-time link to the portal (POST /v1/signin-links):
// opening it signs in with a new token of Tenant and Role.
type SignInLink struct {
	URL     string    `json:"url"`
	Code    string    `json:"code"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// CreateSignInLink is the body of POST /v1/signin-links.
type CreateSignInLink struct {
	Tenant string `json:"tenant,omitempty"`
	Role   string `json:"role"`
}

// CreateSession is the body of POST /v1/sessions: a sign-in link's code,
// traded once for a token (NewToken).
type CreateSession struct {
	Code string `json:"code"`
}

// AuditEntry is one change made through the API.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`  // the caller: "operator", "tenant acme (owner, token tk_...)"
	From   string    `json:"from"` // the caller's address
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Tenant string    `json:"tenant,omitempty"` // the tenant acted on
	Status int       `json:"status"`
}

// ValidateTenantName checks a tenant's name: like a service's.
func ValidateTenantName(name string) error {
	if !nameRE.MatchString(name) {
		return Errorf(CodeInvalid, "name: %q is not a tenant name (lowercase letters, digits and dashes, starting with a letter, at most 40)", name)
	}
	return nil
}

// WhoAmI is who the API takes the caller for (GET /v1/whoami).
type WhoAmI struct {
	Role        string `json:"role"`             // operator, tenant, node, server
	Tenant      string `json:"tenant,omitempty"` // a tenant's token: its tenant
	Access      string `json:"access,omitempty"` // a tenant's token: owner, contributor or reader
	Token       string `json:"token,omitempty"`  // the token's ID, for tokens made by weft token create
	Description string `json:"description"`
}
