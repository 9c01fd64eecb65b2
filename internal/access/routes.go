package access

import (
	"fmt"
	"net/http"
)

// Route is one route of the controller's API and who may call it.
type Route struct {
	Pattern string // as http.ServeMux takes it
	Rule    Rule
}

// Table is every route a controller serves, with its rule. A route that is
// not here cannot be mounted (Mux panics), so a new route comes with its
// rule; the daemon's tests call every route as every wrong identity.
var Table = []Route{
	// A server's self-description: servers forming a cluster ask it.
	{"GET /v1/cluster/self", Public},
	// Signing in to the portal with a one-time link: the code is the credential.
	{"POST /v1/sessions", Public},
	// The web portal: every path outside /v1/. It authenticates its users
	// through the API, which it calls with their tokens.
	{"/", Public},

	// Node agents: each acts for its own node, and fetches the packages
	// and images of its own instances only (the handlers check).
	{"PUT /v1/nodes/{name}", OwnNode},
	{"GET /v1/nodes/{name}", OwnNode},
	{"POST /v1/nodes/{name}/heartbeat", OwnNode},
	{"GET /v1/nodes/{name}/assignments", OwnNode},
	{"GET /v1/nodes/{name}/peers/{instance}", OwnNode}, // the controller checks the instance is the node's
	{"POST /v1/nodes/{name}/scheduledevents", OwnNode}, // the controller checks the instance is the node's
	{"GET /v1/packages/{digest}", Nodes},
	{"HEAD /v1/imagefiles/{digest}", Nodes},
	{"GET /v1/imagefiles/{digest}", Nodes},
	{"GET /v1/imagedigests/{digest}", Nodes},
	{"POST /v1/cluster/certificate/renew", Nodes}, // the handler signs for the caller's node only
	{"POST /v1/cluster/certificate", Joiners},

	// Between servers.
	{"POST /v1/cluster/join", Servers},
	{"POST /v1/storage/members", Servers},
	{"POST /v1/storage/insync", Servers},
	// Each server's metering counts (load balancer bytes, storage requests).
	{"PUT /v1/metering/reports/{server}", Servers},
	{"/v1/storage/replica/", Servers},

	// The operator: the cluster itself, and every tenant.
	{"GET /v1/nodes", Operators},
	{"POST /v1/nodes/{name}/drain", Operators},
	{"POST /v1/nodes/{name}/undrain", Operators},
	{"POST /v1/nodes/{name}/revoke", Operators},
	{"GET /v1/storage/config", Operators},
	{"GET /v1/cluster/members", Operators},
	{"DELETE /v1/cluster/members/{name}", Operators},
	{"GET /v1/cluster/snapshot", Operators},
	{"POST /v1/cluster/snapshot", Operators},
	{"POST /v1/cluster/join-token", Operators},
	{"POST /v1/tenants", Operators},
	{"GET /v1/tenants", Operators},
	{"DELETE /v1/tenants/{name}", Operators},
	{"PUT /v1/tenants/{name}/quota", Operators},
	{"GET /v1/audit", Operators},
	// Prometheus metrics: a scraper holds an operator token, or the
	// servers' certificate.
	{"GET /metrics", Operators},

	// Tenants, each in its own tenant (the handlers scope every object to
	// the caller's tenant and answer 404 for another's), and the operator
	// in any. Readers read; owners and contributors change; owners also
	// manage their tenant's tokens. Storage keys are a write: they are
	// every right on the account.
	{"GET /v1/whoami", TenantRead},
	{"GET /v1/status", TenantRead},
	{"GET /v1/tenants/{name}", TenantRead},
	{"POST /v1/tokens", TenantOwner},
	{"GET /v1/tokens", TenantOwner},
	{"DELETE /v1/tokens/{id}", TenantOwner},
	{"POST /v1/signin-links", TenantOwner},
	{"DELETE /v1/sessions/current", TenantRead},
	{"POST /v1/packages", TenantWrite},
	{"PUT /v1/services/{name}", TenantWrite},
	{"GET /v1/services", TenantRead},
	{"GET /v1/services/{name}", TenantRead},
	{"DELETE /v1/services/{name}", TenantWrite},
	{"POST /v1/services/{name}/scale", TenantWrite},
	{"POST /v1/services/{name}/rollback", TenantWrite},
	// What a deploy would change: it changes nothing, but makes the
	// deploy's checks (quota, ports) on the model, as a deploy does.
	{"POST /v1/services/{name}/plan", TenantWrite},
	{"GET /v1/instances", TenantRead},
	{"GET /v1/instances/{id}", TenantRead},
	{"GET /v1/instances/{id}/logs", TenantRead},
	{"POST /v1/instances/{id}/exec", TenantWrite},
	{"POST /v1/instances/{id}/reimage", TenantWrite},
	{"GET /v1/events", TenantRead},
	{"POST /v1/storage/accounts", TenantWrite},
	{"GET /v1/storage/accounts", TenantRead},
	{"GET /v1/storage/accounts/{name}/keys", TenantWrite},
	{"POST /v1/storage/accounts/{name}/keys/{key}/regenerate", TenantWrite},
	{"DELETE /v1/storage/accounts/{name}", TenantWrite},
	{"PUT /v1/imagefiles/{digest}", TenantWrite},
	{"POST /v1/images", TenantWrite},
	{"GET /v1/images", TenantRead},
	{"GET /v1/images/{name}", TenantRead},
	{"DELETE /v1/images/{name}", TenantWrite},
	{"POST /v1/vms", TenantWrite},
	{"GET /v1/vms", TenantRead},
	{"GET /v1/vms/{name}", TenantRead},
	{"POST /v1/vms/{name}/start", TenantWrite},
	{"POST /v1/vms/{name}/stop", TenantWrite},
	{"DELETE /v1/vms/{name}", TenantWrite},
	{"POST /v1/vms/{name}/exec", TenantWrite},
	{"POST /v1/vms/{name}/migrate", TenantWrite},
	{"POST /v1/vms/{name}/resize", TenantWrite},
	{"POST /v1/vms/{name}/disks", TenantWrite},
	{"DELETE /v1/vms/{name}/disks/{disk}", TenantWrite},
	{"GET /v1/vms/{name}/extensions", TenantRead},
	{"PUT /v1/vms/{name}/extensions/{extension}", TenantWrite},
	{"DELETE /v1/vms/{name}/extensions/{extension}", TenantWrite},
	{"POST /v1/drives", TenantWrite},
	{"GET /v1/drives", TenantRead},
	{"GET /v1/drives/{name}", TenantRead},
	{"POST /v1/drives/{name}/snapshots", TenantWrite},
	{"DELETE /v1/drives/{name}", TenantWrite},
	{"POST /v1/networks", TenantWrite},
	{"GET /v1/networks", TenantRead},
	{"GET /v1/networks/{name}", TenantRead},
	{"DELETE /v1/networks/{name}", TenantWrite},
	{"GET /v1/networks/{name}/rules", TenantRead},
	{"POST /v1/networks/{name}/rules", TenantWrite},
	{"DELETE /v1/networks/{name}/rules/{rule}", TenantWrite},
	{"POST /v1/networks/{name}/vpn", TenantWrite},
	{"GET /v1/networks/{name}/vpn", TenantRead},
	{"DELETE /v1/networks/{name}/vpn", TenantWrite},
	{"GET /v1/vpns", TenantRead},
	// Extensions: published in a tenant; the default tenant's and the
	// built-in ones serve every tenant, as images do.
	{"POST /v1/extensions", TenantWrite},
	{"GET /v1/extensions", TenantRead},
	{"GET /v1/extensions/{name}", TenantRead},

	// Metering: a tenant reads its own usage and bill (the handlers scope
	// them), and the prices; the operator sets them.
	{"GET /v1/usage", TenantRead},
	{"GET /v1/bills", TenantRead},
	{"GET /v1/ratecard", TenantRead},
	{"PUT /v1/ratecard", Operators},
	{"/v1/", Operators}, // anything else: the API answers 404
}

var rules = func() map[string]Rule {
	m := map[string]Rule{}
	for _, r := range Table {
		if _, dup := m[r.Pattern]; dup {
			panic("access: route " + r.Pattern + " is in the table twice")
		}
		m[r.Pattern] = r.Rule
	}
	return m
}()

// RuleOf is the rule of a route of the table.
func RuleOf(pattern string) (Rule, bool) {
	r, ok := rules[pattern]
	return r, ok
}

// Mux is an http.ServeMux that mounts only routes of the table: mounting
// a route without a rule panics, at start.
type Mux struct{ mux *http.ServeMux }

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{mux: http.NewServeMux()} }

// Handle mounts h at pattern, which must be in Table.
func (m *Mux) Handle(pattern string, h http.Handler) {
	if _, ok := rules[pattern]; !ok {
		panic(fmt.Sprintf("access: route %q has no rule in access.Table", pattern))
	}
	m.mux.Handle(pattern, h)
}

// HandleFunc mounts f at pattern, which must be in Table.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// Pass mounts h for every request no route of m matches: the next layer,
// which mounts its own routes.
func (m *Mux) Pass(h http.Handler) { m.mux.Handle("/", h) }

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }
