// Package access decides who may call what on a controller's API. It names
// the callers (Principal: a server of the cluster, the operator, a node
// agent, an agent holding the join token, or nobody), holds the one table
// of every route and the rule it follows (routes.go), and enforces that
// table at the API's edge, before a request is served or forwarded.
//
// Who a caller is (authentication: certificates, tokens) is decided by the
// daemon, which knows the credentials; this package only decides what each
// caller may do.
package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/weftcloud/weft/api"
)

// Role is what a caller is to the cluster.
type Role string

// The roles.
const (
	// Anonymous presented nothing the cluster knows.
	Anonymous Role = ""
	// Server is another server of the cluster (its certificate): the
	// cluster's own traffic (replication, copies, probes) and requests a
	// server forwards on a caller's behalf, which carry that caller.
	Server Role = "server"
	// Operator runs the cloud: the admin token, or an operator token.
	Operator Role = "operator"
	// Tenant is a customer's token: it acts within its own tenant only,
	// with the access its token gives (Principal.Access).
	Tenant Role = "tenant"
	// Node is one node's agent (a certificate naming the node): it acts
	// for its own node only.
	Node Role = "node"
	// Joiner holds the join token: it may only trade it for a node's
	// first certificate.
	Joiner Role = "joiner"
)

// Principal is an authenticated caller.
type Principal struct {
	Role Role `json:"role"`
	// Name is the node's for Node, for Server the server's when its
	// certificate names one (pki.IssueServer), and for a token (a tenant's
	// or an operator's) the token's ID.
	Name string `json:"name,omitempty"`
	// For Tenant: the tenant, and the access its token gives
	// (api.AccessOwner, AccessContributor, AccessReader).
	Tenant string `json:"tenant,omitempty"`
	Access string `json:"access,omitempty"`
	// Addr is where the caller connected from (the audit log's "from
	// where"): set at the edge, and carried when a server forwards.
	Addr string `json:"addr,omitempty"`
}

func (p Principal) String() string {
	switch {
	case p.Role == Anonymous:
		return "an anonymous caller"
	case p.Role == Tenant:
		return fmt.Sprintf("tenant %s's %s token %s", p.Tenant, p.Access, p.Name)
	case p.Role == Operator && p.Name != "":
		return "the operator (token " + p.Name + ")"
	case p.Name != "":
		return fmt.Sprintf("%s %s", p.Role, p.Name)
	default:
		return "the " + string(p.Role)
	}
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the principal a request's context carries (Anonymous when
// none).
func From(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// ForwardedHeader carries the caller of a request that a server forwards
// to the leader: the leader believes it only from another server.
const ForwardedHeader = "X-Weft-Principal"

// Encode is p as ForwardedHeader carries it.
func (p Principal) Encode() string {
	data, _ := json.Marshal(p)
	return string(data)
}

// Decode reads a principal ForwardedHeader carries.
func Decode(s string) (Principal, error) {
	var p Principal
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return Principal{}, fmt.Errorf("access: %s: %w", ForwardedHeader, err)
	}
	switch p.Role {
	case Anonymous, Server, Operator, Joiner:
	case Tenant:
		if p.Tenant == "" || !validAccess(p.Access) {
			return Principal{}, fmt.Errorf("access: %s: a tenant principal needs a tenant and an access", ForwardedHeader)
		}
	case Node:
		if p.Name == "" {
			return Principal{}, fmt.Errorf("access: %s: a node without a name", ForwardedHeader)
		}
	default:
		return Principal{}, fmt.Errorf("access: %s: unknown role %q", ForwardedHeader, p.Role)
	}
	return p, nil
}

// Rule says who may call a route.
type Rule string

// The rules. Servers may call every route: a server holds the whole state
// and acts for callers whose requests it forwards.
const (
	// Public: anyone, with no credentials (a server's self-description,
	// which forming servers ask each other).
	Public Rule = "public"
	// Servers: the cluster's servers only (replication, restores of
	// membership, joining Raft).
	Servers Rule = "servers"
	// Operators: the operator.
	Operators Rule = "operators"
	// OwnNode: the node named by the route's {name}, or the operator.
	OwnNode Rule = "own-node"
	// Nodes: any node (each for itself: the handler checks what the node
	// may see), or the operator.
	Nodes Rule = "nodes"
	// Joiners: the join token (a node's first certificate).
	Joiners Rule = "joiners"
	// TenantRead: the operator, and every token of a tenant (the handler
	// shows the tenant's own objects only).
	TenantRead Rule = "tenant-read"
	// TenantWrite: the operator, and a tenant's owner and contributor
	// tokens (changes within their own tenant).
	TenantWrite Rule = "tenant-write"
	// TenantOwner: the operator, and a tenant's owner tokens (its tokens
	// and sign-in links).
	TenantOwner Rule = "tenant-owner"
)

func validAccess(a string) bool {
	return a == api.AccessOwner || a == api.AccessContributor || a == api.AccessReader
}

// tenantMay says whether a tenant token with access a may call a route
// that follows rule.
func tenantMay(rule Rule, a string) bool {
	switch rule {
	case TenantRead:
		return validAccess(a)
	case TenantWrite:
		return a == api.AccessOwner || a == api.AccessContributor
	case TenantOwner:
		return a == api.AccessOwner
	}
	return false
}

// Denied is why a principal may not call a route: Unauthenticated when it
// presented no credentials (401), otherwise forbidden (403).
type Denied struct {
	Unauthenticated bool
	Reason          string
}

func (d *Denied) Error() string { return d.Reason }

// Check says whether p may call a route that follows rule; for OwnNode,
// node is the route's {name}. It returns nil or a *Denied.
func Check(rule Rule, p Principal, node string) error {
	if rule == Public || p.Role == Server {
		return nil
	}
	if p.Role == Anonymous {
		return &Denied{Unauthenticated: true, Reason: "this API needs credentials: the API token (--token or WEFT_TOKEN) or a certificate of the cluster's CA"}
	}
	switch rule {
	case Operators, Nodes, OwnNode, TenantRead, TenantWrite, TenantOwner:
		if p.Role == Operator {
			return nil
		}
	}
	if p.Role == Tenant && tenantMay(rule, p.Access) {
		return nil
	}
	switch {
	case rule == Nodes && p.Role == Node:
		return nil
	case rule == OwnNode && p.Role == Node && p.Name == node:
		return nil
	case rule == OwnNode && p.Role == Node:
		return &Denied{Reason: fmt.Sprintf("node %s's certificate acts for node %s only, not %s", p.Name, p.Name, node)}
	case rule == Joiners && p.Role == Joiner:
		return nil
	}
	return &Denied{Reason: fmt.Sprintf("%s may not call this route (it is for %s)", p, rule.who())}
}

func (r Rule) who() string {
	switch r {
	case Servers:
		return "the cluster's servers"
	case Operators:
		return "the operator"
	case OwnNode:
		return "the node it names and the operator"
	case Nodes:
		return "nodes and the operator"
	case Joiners:
		return "agents with the join token"
	case TenantRead:
		return "the operator and tenants' tokens"
	case TenantWrite:
		return "the operator and tenants' owner and contributor tokens"
	case TenantOwner:
		return "the operator and tenants' owner tokens"
	}
	return string(r)
}

// Enforce serves a request only when its principal may call its route:
// principal authenticates the caller (or answers the error itself and
// returns false), and denied renders a refusal. Routes missing from the
// table are the operator's (the API answers them 404).
func Enforce(principal func(w http.ResponseWriter, r *http.Request) (Principal, bool), denied func(w http.ResponseWriter, r *http.Request, err error), next http.Handler) http.Handler {
	rules := http.NewServeMux()
	for _, rt := range Table {
		rule := rt.Rule
		rules.HandleFunc(rt.Pattern, func(_ http.ResponseWriter, r *http.Request) {
			m := r.Context().Value(matchKey{}).(*match)
			m.rule, m.node = rule, r.PathValue("name")
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal(w, r)
		if !ok {
			return
		}
		// The rules mux matches the route as the API's muxes will, and
		// reads its {name}.
		m := &match{rule: Operators}
		rules.ServeHTTP(discard{}, r.WithContext(context.WithValue(r.Context(), matchKey{}, m)))
		if err := Check(m.rule, p, m.node); err != nil {
			denied(w, r, err)
			return
		}
		ctx := context.WithValue(WithPrincipal(r.Context(), p), ruleKey{}, m.rule)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type ruleKey struct{}

// RuleFrom is the rule of the route a request Enforce let through matched.
func RuleFrom(ctx context.Context) (Rule, bool) {
	r, ok := ctx.Value(ruleKey{}).(Rule)
	return r, ok
}

type matchKey struct{}

// match is the rule of the route a request matched.
type match struct {
	rule Rule
	node string
}

// discard is where the rules mux's answers go.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
