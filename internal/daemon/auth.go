package daemon

import (
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/state"
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

// joinTokens says whether a request carries the join token: the one last
// rotated into the replicated state, or before any rotation the one of the
// TLS folder.
type joinTokens struct {
	creds *pki.Credentials
	st    atomic.Pointer[state.Store] // set once the state is open
}

func (j *joinTokens) matches(authorization string) bool {
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
			writeError(w, api.Errorf(api.CodeInvalid, "this server runs without TLS (--tls-dir), so agents join without a token"))
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

// authorize lets through only requests that present a certificate of the
// cluster's CA or the admin token, when the server has credentials. A
// server's self-description stays open: it is what forming servers ask.
func authorize(creds *pki.Credentials, join *joinTokens, log *slog.Logger, next http.Handler) http.Handler {
	if creds == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == joinPath && join.matches(r.Header.Get("Authorization")) {
			signAgent(creds, log, "", w, r)
			return
		}
		if r.URL.Path == "/v1/cluster/self" || creds.Authorize(r.TLS, r.Header.Get("Authorization")) == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, api.Errorf(api.CodeUnauthorized, "this cluster needs a client certificate of its CA or an API token (WEFT_TOKEN)"))
	})
}

// agentCertificates applies what the servers know of certificates to the
// requests that present one, on whichever server the caller reached (a
// request forwarded to the leader carries this server's certificate, not
// the caller's):
//   - a certificate past its expiry is refused: a kept-alive connection
//     outlives the handshake that checked it;
//   - a node's certificate issued before the node was revoked is refused;
//   - a node's certificate acts on /v1/nodes/NAME only for its own node;
//   - POST renewPath signs a new certificate for the node the current one names.
//
// Refusals close the connection, so that the agent's next request makes a
// new handshake, with its renewed certificate if it has one.
func agentCertificates(creds *pki.Credentials, ctl *fabric.Controller, log *slog.Logger, next http.Handler) http.Handler {
	if creds == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaf := clientCertificate(r)
		if leaf == nil {
			if r.URL.Path == renewPath {
				writeError(w, api.Errorf(api.CodeForbidden, "certificate renewal needs the node's own certificate: an agent without one joins with the join token"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		node, isNode := pki.AgentNode(leaf)
		err := checkCertificate(ctl, leaf, node, isNode, r.URL.Path)
		switch {
		case err != nil:
			w.Header().Set("Connection", "close")
			writeError(w, err)
		case r.URL.Path == joinTokenPath && isNode:
			writeError(w, api.Errorf(api.CodeForbidden, "a node's certificate cannot rotate the join token: use the API token"))
		case r.URL.Path == renewPath && !isNode:
			writeError(w, api.Errorf(api.CodeForbidden, "certificate renewal needs a node's own certificate, not %q's", leaf.Subject.CommonName))
		case r.URL.Path == renewPath:
			signAgent(creds, log, node, w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// serversOnly admits callers with the servers' certificate only: the
// storage replication routes, which agents and API users have no business
// with. Without TLS (weft dev) everything is on one machine.
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

// checkCertificate says why leaf, node's certificate when isNode, may not
// be used for a request to path; nil when it may.
func checkCertificate(ctl *fabric.Controller, leaf *x509.Certificate, node string, isNode bool, path string) *api.Error {
	if time.Now().After(leaf.NotAfter) {
		return api.Errorf(api.CodeUnauthorized, "the client certificate expired at %s", leaf.NotAfter.Format(time.RFC3339))
	}
	if !isNode {
		return nil
	}
	if ctl.Revoked(node, pki.Issued(leaf)) {
		return api.Errorf(api.CodeForbidden, "node %s's certificate (serial %s) is revoked: the node joins again with the join token", node, leaf.SerialNumber.Text(16))
	}
	if other := pathNode(path); other != "" && other != node {
		return api.Errorf(api.CodeForbidden, "this certificate is node %s's, not node %s's", node, other)
	}
	return nil
}

// pathNode is NAME in /v1/nodes/NAME[/...], or "".
func pathNode(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/nodes/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// signAgent answers a certificate request: a joining agent's (node "":
// the join token let it in, any name) or a renewing one's (node: the one
// its certificate names, which the request must name too).
func signAgent(creds *pki.Credentials, log *slog.Logger, node string, w http.ResponseWriter, r *http.Request) {
	var req api.AgentCertificateRequest
	if r.Method != http.MethodPost || json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req) != nil || req.Name == "" {
		writeError(w, api.Errorf(api.CodeInvalid, "certificate: POST a name and a PEM certificate request"))
		return
	}
	if node != "" && req.Name != node {
		writeError(w, api.Errorf(api.CodeForbidden, "this certificate is node %s's, not node %s's", node, req.Name))
		return
	}
	cert, err := creds.SignAgent(req.Name, []byte(req.CSR))
	if err != nil {
		writeError(w, api.Errorf(api.CodeInvalid, "%s", err))
		return
	}
	how := "joined"
	if node != "" {
		how = "renewed"
	}
	log.Info("agent certificate signed", "node", req.Name, "how", how, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.AgentCertificate{Certificate: string(cert), CA: string(creds.CAPEM())})
}

func writeError(w http.ResponseWriter, e *api.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.HTTPStatus(e))
	json.NewEncoder(w).Encode(api.ErrorBody{Error: *e})
}
