package daemon

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
)

// Where agents get their certificates: with the join token, and then,
// over mutual TLS with the certificate they hold, a new one before it
// expires.
const (
	joinPath  = "/v1/cluster/certificate"
	renewPath = "/v1/cluster/certificate/renew"
)

// joinTokenPath rotates the join token.
const joinTokenPath = "/v1/cluster/join-token"

// joinTokenKey is where the replicated state keeps the hash of the join
// token once it was rotated.
const joinTokenKey = "join-token"

// authenticator says who calls the API (an access.Principal) from the
// credentials the request presents. With TLS (creds set):
//   - the servers' certificate is a server; a request another server
//     forwarded carries its caller in access.ForwardedHeader;
//   - a node's certificate ("weft agent NAME") is that node, unless it
//     expired or the node was revoked after it was issued;
//   - the admin token is the operator, the join token a joiner.
//
// Without TLS (one machine): the admin token of the data folder is the
// operator, and the token of this server's own calls to itself (self) a
// server. Anything else is anonymous, which the access table lets through
// to public routes only.
type authenticator struct {
	creds *pki.Credentials // nil without TLS
	admin string           // without TLS: the admin token
	self  string           // without TLS: what this server's own calls carry
	join  *joinTokens
	ctl   atomic.Pointer[fabric.Controller] // node revocations; set once built
	// tokens are the tokens weft token create makes (tenants' and
	// operators'); set once the state is open.
	tokens atomic.Pointer[tenants.Store]
}

// principal authenticates r, or answers why not and returns false.
func (a *authenticator) principal(w http.ResponseWriter, r *http.Request) (access.Principal, bool) {
	p, err := a.identify(r)
	if err == nil && p.Addr == "" {
		p.Addr = r.RemoteAddr
	}
	if err != nil {
		// A certificate refused: the agent's next request makes a new
		// handshake, with its renewed certificate if it has one.
		w.Header().Set("Connection", "close")
		writeError(w, err)
		return access.Principal{}, false
	}
	return p, true
}

func (a *authenticator) identify(r *http.Request) (access.Principal, *api.Error) {
	bearer := r.Header.Get("Authorization")
	forwarded := r.Header.Get(access.ForwardedHeader)
	r.Header.Del(access.ForwardedHeader) // believed from servers only, below
	if a.creds == nil {
		switch {
		case a.self != "" && pki.BearerMatches(bearer, pki.TokenHash(a.self)):
			return access.Principal{Role: access.Server}, nil
		case a.admin != "" && pki.BearerMatches(bearer, pki.TokenHash(a.admin)):
			return access.Principal{Role: access.Operator}, nil
		case isToken(bearer):
			return a.token(bearer)
		case bearer != "":
			return access.Principal{}, api.Errorf(api.CodeUnauthorized, "the API token is not this server's: use the one in the server's data folder (admin.token)")
		}
		return access.Principal{}, nil
	}
	if leaf := clientCertificate(r); leaf != nil {
		return a.certificate(leaf, forwarded)
	}
	switch {
	case a.creds.IsAdminToken(bearer):
		return access.Principal{Role: access.Operator}, nil
	case a.join.matches(bearer):
		return access.Principal{Role: access.Joiner}, nil
	case isToken(bearer):
		return a.token(bearer)
	case bearer != "":
		return access.Principal{}, api.Errorf(api.CodeUnauthorized, "the bearer token is neither the API token nor the join token")
	}
	return access.Principal{}, nil
}

func isToken(bearer string) bool {
	tok, ok := strings.CutPrefix(bearer, "Bearer ")
	return ok && tenants.IsToken(tok)
}

// token is the principal a token of weft token create stands for: the
// operator, or a tenant with the token's access.
func (a *authenticator) token(bearer string) (access.Principal, *api.Error) {
	store := a.tokens.Load()
	var t api.Token
	found := false
	if store != nil {
		t, found = store.Authenticate(strings.TrimPrefix(bearer, "Bearer "))
	}
	if !found {
		return access.Principal{}, api.Errorf(api.CodeUnauthorized, "%s", tokenRefused)
	}
	return tokenPrincipal(t), nil
}

// tokenRefused is the answer to a token no server may accept.
const tokenRefused = "the token is unknown, expired or revoked: ask for a new one (weft token create), or sign in again (weft login)"

// tokenPrincipal is who a token of weft token create stands for.
func tokenPrincipal(t api.Token) access.Principal {
	if t.Role == api.AccessOperator {
		return access.Principal{Role: access.Operator, Name: t.ID}
	}
	return access.Principal{Role: access.Tenant, Name: t.ID, Tenant: t.Tenant, Access: t.Role}
}

// stillValid checks again the token of a caller another server forwards:
// that server may not have applied a revocation (or the deletion of the
// token's tenant) that this one has, and every write goes through the
// leader, so none is made with a token the leader refuses.
func (a *authenticator) stillValid(p access.Principal) (access.Principal, *api.Error) {
	if p.Name == "" || (p.Role != access.Tenant && p.Role != access.Operator) {
		return p, nil // the admin token, a node or a server: not a token of weft token create
	}
	store := a.tokens.Load()
	if store == nil {
		return access.Principal{}, api.Errorf(api.CodeUnavailable, "the server is starting: try again")
	}
	t, ok := store.Current(p.Name)
	if !ok {
		return access.Principal{}, api.Errorf(api.CodeUnauthorized, "%s", tokenRefused)
	}
	want := tokenPrincipal(t)
	want.Addr = p.Addr
	if p != want {
		return access.Principal{}, api.Errorf(api.CodeForbidden, "the forwarded caller does not match its token %s", t.ID)
	}
	return p, nil
}

// certificate is the principal a verified client certificate stands for.
func (a *authenticator) certificate(leaf *x509.Certificate, forwarded string) (access.Principal, *api.Error) {
	if time.Now().After(leaf.NotAfter) {
		return access.Principal{}, api.Errorf(api.CodeUnauthorized, "the client certificate expired at %s", leaf.NotAfter.Format(time.RFC3339))
	}
	if pki.IsServer(leaf) {
		if forwarded == "" {
			name, _ := pki.ServerName(leaf)
			return access.Principal{Role: access.Server, Name: name}, nil
		}
		p, err := access.Decode(forwarded)
		if err != nil {
			return access.Principal{}, api.Errorf(api.CodeInvalid, "%s", err)
		}
		return a.stillValid(p)
	}
	node, ok := pki.AgentNode(leaf)
	if !ok {
		return access.Principal{}, api.Errorf(api.CodeForbidden, "the certificate %q names no node: agents join with the join token for a certificate of their own", leaf.Subject.CommonName)
	}
	if ctl := a.ctl.Load(); ctl != nil && ctl.Revoked(node, pki.Issued(leaf)) {
		return access.Principal{}, api.Errorf(api.CodeForbidden, "node %s's certificate (serial %s) is revoked: the node joins again with the join token", node, leaf.SerialNumber.Text(16))
	}
	return access.Principal{Role: access.Node, Name: node}, nil
}

// enforce authenticates every request and serves it only when the access
// table lets its caller call its route.
func (a *authenticator) enforce(next http.Handler) http.Handler {
	return access.Enforce(a.principal, func(w http.ResponseWriter, r *http.Request, err error) {
		var d *access.Denied
		if errors.As(err, &d) && d.Unauthenticated {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, api.Errorf(api.CodeUnauthorized, "%s", d.Reason))
			return
		}
		writeError(w, api.Errorf(api.CodeForbidden, "%s", err))
	}, next)
}

// joinTokens says whether a request carries the join token: the one last
// rotated into the replicated state, or before any rotation the one of the
// TLS folder.
type joinTokens struct {
	creds *pki.Credentials
	st    atomic.Pointer[state.Store] // set once the state is open
}

func (j *joinTokens) matches(authorization string) bool {
	if !strings.HasPrefix(authorization, "Bearer ") {
		return false
	}
	if st := j.st.Load(); st != nil {
		if e, ok := (*st).Get(state.KindMeta, joinTokenKey); ok {
			var rec api.JoinToken
			return json.Unmarshal(e.Value, &rec) == nil && pki.BearerMatches(authorization, rec.SHA256)
		}
	}
	return j.creds.IsJoinToken(authorization)
}

// rotateJoinToken makes a new join token and keeps its hash in the
// replicated state, so every server refuses the old one from then on. It
// answers the token itself, once.
func rotateJoinToken(st state.Store, creds *pki.Credentials, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if creds == nil {
			writeError(w, api.Errorf(api.CodeInvalid, "this server runs without TLS (--tls-dir): it has no agents from other machines to join"))
			return
		}
		tok := pki.NewToken()
		rec := api.JoinToken{SHA256: pki.TokenHash(tok), RotatedAt: time.Now().UTC()}
		data, err := json.Marshal(rec)
		if err == nil {
			_, err = st.Apply(r.Context(), []state.Op{{Kind: state.KindMeta, Key: joinTokenKey, Value: data}})
		}
		if err != nil {
			writeError(w, api.Errorf(api.CodeUnavailable, "join token not rotated: %s", err))
			return
		}
		log.Info("join token rotated")
		rec.Token = tok
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rec)
	})
}

// serversOnly admits callers with the servers' certificate only: the
// storage replication routes, which are served by the server called and
// never forwarded, so they are checked here as well as by the table.
// Without TLS there is one server, and nothing to replicate to.
func serversOnly(creds *pki.Credentials, next http.Handler) http.Handler {
	if creds == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cert := clientCertificate(r); cert == nil || !pki.IsServer(cert) {
			writeError(w, api.Errorf(api.CodeForbidden, "storage replication is between servers"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientCertificate is the certificate the caller presented and the
// handshake verified; nil when there is none.
func clientCertificate(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// certificates answers certificate requests: a joining agent's (the join
// token let it in) for a name no live node holds, which is registered
// before the certificate is signed so that `weft node revoke` can revoke
// it; and a renewing node's, for its own name.
type certificates struct {
	creds *pki.Credentials
	ctl   *fabric.Controller
	log   *slog.Logger
}

func (c *certificates) join(w http.ResponseWriter, r *http.Request) {
	req, ok := c.request(w, r)
	if !ok {
		return
	}
	if err := c.ctl.ReserveNode(r.Context(), req.Name); err != nil {
		writeError(w, err)
		return
	}
	c.sign(w, r, req, "joined")
}

func (c *certificates) renew(w http.ResponseWriter, r *http.Request) {
	req, ok := c.request(w, r)
	if !ok {
		return
	}
	if p := access.From(r.Context()); p.Role != access.Node || p.Name != req.Name {
		writeError(w, api.Errorf(api.CodeForbidden, "%s may not renew node %s's certificate: a node renews its own", p, req.Name))
		return
	}
	c.sign(w, r, req, "renewed")
}

func (c *certificates) request(w http.ResponseWriter, r *http.Request) (api.AgentCertificateRequest, bool) {
	var req api.AgentCertificateRequest
	if c.creds == nil {
		writeError(w, api.Errorf(api.CodeInvalid, "this server runs without TLS (--tls-dir): it signs no certificates"))
		return req, false
	}
	if json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req) != nil || req.Name == "" {
		writeError(w, api.Errorf(api.CodeInvalid, "certificate: POST a name and a PEM certificate request"))
		return req, false
	}
	if err := api.ValidateNodeName(req.Name); err != nil {
		writeError(w, err)
		return req, false
	}
	return req, true
}

func (c *certificates) sign(w http.ResponseWriter, r *http.Request, req api.AgentCertificateRequest, how string) {
	cert, err := c.creds.SignAgent(req.Name, []byte(req.CSR))
	if err != nil {
		writeError(w, api.Errorf(api.CodeInvalid, "%s", err))
		return
	}
	c.log.Info("agent certificate signed", "node", req.Name, "how", how, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.AgentCertificate{Certificate: string(cert), CA: string(c.creds.CAPEM())})
}

func writeError(w http.ResponseWriter, err error) { httpapi.WriteError(nil, w, nil, err) }
