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
	// The web portal: every path outside /v1/. It authenticates its users
	// through the API, which it calls with their tokens.
	{"/", Public},

	// Node agents: each acts for its own node, and fetches the packages
	// and images of its own instances only (the handlers check).
	{"PUT /v1/nodes/{name}", OwnNode},
	{"GET /v1/nodes/{name}", OwnNode},
	{"POST /v1/nodes/{name}/heartbeat", OwnNode},
	{"GET /v1/nodes/{name}/assignments", OwnNode},
	{"GET /v1/packages/{digest}", Nodes},
	{"HEAD /v1/imagefiles/{digest}", Nodes},
	{"GET /v1/imagefiles/{digest}", Nodes},
	{"GET /v1/images/{name}", Nodes},
	{"POST /v1/cluster/certificate/renew", Nodes}, // the handler signs for the caller's node only
	{"POST /v1/cluster/certificate", Joiners},

	// Between servers.
	{"POST /v1/cluster/join", Servers},
	{"POST /v1/storage/members", Servers},
	{"POST /v1/storage/insync", Servers},
	{"/v1/storage/replica/", Servers},

	// The operator.
	{"GET /v1/status", Operators},
	{"POST /v1/packages", Operators},
	{"PUT /v1/services/{name}", Operators},
	{"GET /v1/services", Operators},
	{"GET /v1/services/{name}", Operators},
	{"DELETE /v1/services/{name}", Operators},
	{"POST /v1/services/{name}/scale", Operators},
	{"POST /v1/services/{name}/rollback", Operators},
	{"GET /v1/instances", Operators},
	{"GET /v1/instances/{id}", Operators},
	{"GET /v1/instances/{id}/logs", Operators},
	{"POST /v1/instances/{id}/exec", Operators},
	{"POST /v1/instances/{id}/reimage", Operators},
	{"GET /v1/nodes", Operators},
	{"POST /v1/nodes/{name}/drain", Operators},
	{"POST /v1/nodes/{name}/undrain", Operators},
	{"POST /v1/nodes/{name}/revoke", Operators},
	{"GET /v1/events", Operators},
	{"POST /v1/storage/accounts", Operators},
	{"GET /v1/storage/accounts", Operators},
	{"GET /v1/storage/accounts/{name}/keys", Operators},
	{"POST /v1/storage/accounts/{name}/keys/{key}/regenerate", Operators},
	{"DELETE /v1/storage/accounts/{name}", Operators},
	{"GET /v1/storage/config", Operators},
	{"PUT /v1/imagefiles/{digest}", Operators},
	{"POST /v1/images", Operators},
	{"GET /v1/images", Operators},
	{"DELETE /v1/images/{name}", Operators},
	{"POST /v1/vms", Operators},
	{"GET /v1/vms", Operators},
	{"GET /v1/vms/{name}", Operators},
	{"POST /v1/vms/{name}/start", Operators},
	{"POST /v1/vms/{name}/stop", Operators},
	{"DELETE /v1/vms/{name}", Operators},
	{"POST /v1/vms/{name}/exec", Operators},
	{"POST /v1/vms/{name}/migrate", Operators},
	{"POST /v1/vms/{name}/resize", Operators},
	{"POST /v1/vms/{name}/disks", Operators},
	{"DELETE /v1/vms/{name}/disks/{disk}", Operators},
	{"GET /v1/cluster/members", Operators},
	{"DELETE /v1/cluster/members/{name}", Operators},
	{"GET /v1/cluster/snapshot", Operators},
	{"POST /v1/cluster/snapshot", Operators},
	{"POST /v1/cluster/join-token", Operators},
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
