package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// secondarySuffix names an account's secondary location.
const secondarySuffix = "-secondary"

// maxClockSkew is how far a signed request's date may be from ours; Azure
// refuses requests older than 15 minutes to limit replay.
const maxClockSkew = 15 * time.Minute

// front is the HTTP front end of one service.
type front struct {
	svc      Service
	accounts Accounts
	h        Handler
	usage    *Usage // nil counts and refuses nothing
	log      *slog.Logger
	now      func() time.Time
}

var _ http.Handler = (*front)(nil)

// NewFront returns the HTTP front end of one service. It resolves the
// account from host-style (ACCOUNT.blob.DOMAIN[:port]) or path-style
// (/ACCOUNT/...) addresses; sets x-ms-request-id, x-ms-version (the
// caller's, echoed) and Date on every answer; answers CORS preflight
// requests from the rules of a Handler that implements CORSRules; verifies
// Shared Key, Shared Key Lite and SAS; counts each request it passes to
// h in usage, and refuses the writes of accounts usage says are full
// (usage may be nil); and then calls h.
func NewFront(svc Service, accounts Accounts, h Handler, usage *Usage, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &front{svc: svc, accounts: accounts, h: h, usage: usage, log: logger, now: time.Now}
}

// maxDrain is how much of a request body the front end reads and drops
// after an answer given before the body was read (an error, a refusal).
// net/http drains at most 256 KiB itself and otherwise closes the
// connection while the client may still be sending: the client then sees
// a reset instead of the answer (a 503 ServerBusy on a full disk, say).
const maxDrain = 8 << 20

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.serve(w, r, r.Header.Get("x-ms-version"))
	if r.ContentLength > 0 && r.ContentLength <= maxDrain {
		io.Copy(io.Discard, io.LimitReader(r.Body, maxDrain))
	}
}

// serve answers r as of version (the request's x-ms-version, or for a
// sub-request of a batch, which carries none, the batch's).
func (f *front) serve(w http.ResponseWriter, r *http.Request, version string) {
	id := newRequestID()
	h := w.Header()
	h.Set("x-ms-request-id", id)
	h.Set("Date", f.now().UTC().Format(http.TimeFormat))
	h.Set("Server", "Weft-Storage/1.0")
	if c := r.Header.Get("x-ms-client-request-id"); c != "" {
		h.Set("x-ms-client-request-id", c)
	}
	if version == "" {
		h.Set("x-ms-version", TargetVersion)
	} else {
		h.Set("x-ms-version", version)
	}
	rawNames(r)
	req := &Request{Service: f.svc, RequestID: id}
	if err := f.prepare(r, req, version); err != nil {
		f.fail(w, r, req, err)
		return
	}
	if r.Method == http.MethodOptions {
		f.preflight(w, r, req)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		f.decorateCORS(h, req.Account, origin, r.Method)
	}
	if f.isUserDelegationKey(r, req) {
		f.serveUserDelegationKey(w, r, req, version)
		return
	}
	if f.isBatch(r) {
		// Each sub-request comes back through serve: counted and
		// refused one by one.
		f.serveBatch(w, r, req, version)
		return
	}
	f.usage.count(req.Account)
	if err := f.usage.refuse(r, req.Account); err != nil {
		f.fail(w, r, req, err)
		return
	}
	f.h.ServeStorage(w, r, req)
}

// prepare resolves the account and path and authenticates the caller.
func (f *front) prepare(r *http.Request, req *Request, version string) error {
	if version != "" && !validVersion(version) {
		return Errorf(http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
	}
	account, path, pathStyle := f.resolve(r)
	if account == "" {
		return Errorf(http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server.")
	}
	// ACCOUNT-secondary is the account's read-only secondary location,
	// where read-access geo-redundant clients read (and ask Get Service
	// Stats), signing with the account's own name. Weft's one copy serves
	// both; account names have no dash, so the suffix is unambiguous.
	account, secondary := strings.CutSuffix(account, secondarySuffix)
	req.Account, req.Path = account, path
	if r.Method == http.MethodOptions {
		return nil // preflight requests carry no credentials
	}
	auth, err := f.authenticate(r.Context(), r, account, pathStyle)
	if err != nil {
		return err
	}
	req.Auth = auth
	if auth.Kind == Bearer && !f.isUserDelegationKey(r, req) {
		// A bearer token's principal has no role assignments in Weft, so
		// it is Azure's answer to a principal without a data role.
		return Errorf(http.StatusForbidden, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.")
	}
	if secondary && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return Errorf(http.StatusForbidden, "InsufficientAccountPermissions", "The account being accessed does not have sufficient permissions to execute this operation: its secondary location is read-only.")
	}
	return nil
}

// resolve finds the account: the first label of a host-style name
// (ACCOUNT.blob.DOMAIN), otherwise the first path segment.
func (f *front) resolve(r *http.Request) (account, path string, pathStyle bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if i := strings.Index(host, "."+string(f.svc)+"."); i > 0 && net.ParseIP(host) == nil {
		return strings.ToLower(host[:i]), p, false
	}
	account, path, _ = strings.Cut(p, "/")
	return account, path, true
}

// authenticate verifies the credentials r carries, if any.
func (f *front) authenticate(ctx context.Context, r *http.Request, account string, pathStyle bool) (Auth, error) {
	authz := r.Header.Get("Authorization")
	q := r.URL.Query()
	switch {
	case authz != "":
		scheme, cred, _ := strings.Cut(authz, " ")
		var kind AuthKind
		switch scheme {
		case "SharedKey":
			kind = SharedKey
		case "SharedKeyLite":
			kind = SharedKeyLite
		case "Bearer":
			keys, err := f.keys(ctx, account)
			if err != nil {
				return Auth{}, err
			}
			p, e := verifyBearer(strings.TrimSpace(cred), keys, f.now())
			if e != nil {
				return Auth{}, e
			}
			return Auth{Kind: Bearer, Principal: p}, nil
		default:
			return Auth{}, authFailed("Authorization scheme %q is not supported; use SharedKey, SharedKeyLite or a SAS.", scheme)
		}
		name, sig, ok := strings.Cut(strings.TrimSpace(cred), ":")
		if !ok || name != account {
			return Auth{}, authFailed("The account in the Authorization header (%s) is not the account addressed (%s).", name, account)
		}
		keys, err := f.keys(ctx, account)
		if err != nil {
			return Auth{}, err
		}
		if err := f.checkDate(r); err != nil {
			return Auth{}, err
		}
		candidates := sharedKeyStrings(r, f.svc, account, kind == SharedKeyLite, pathStyle)
		if !verifySignature(keys, candidates, sig) {
			return Auth{}, authFailed("The MAC signature found in the HTTP request '%s' is not the same as any computed signature. Server used following string to sign: '%s'.", sig, candidates[0])
		}
		return Auth{Kind: kind}, nil
	case q.Has("sig"):
		s, kind, e := parseSAS(q)
		if e != nil {
			return Auth{}, e
		}
		keys, err := f.keys(ctx, account)
		if err != nil {
			return Auth{}, err
		}
		var sts string
		p := strings.TrimPrefix(r.URL.Path, "/")
		if pathStyle {
			_, p, _ = strings.Cut(p, "/")
		}
		switch {
		case s.Delegation != nil:
			if e := checkDelegation(f.svc, s.Delegation, f.now()); e != nil {
				return Auth{}, e
			}
			res, e := blobSASResource("/blob", account, p, s)
			if e != nil {
				return Auth{}, e
			}
			sts = userDelegationSASString(r, s, res, q)
			// The SAS is signed with the user delegation key, which is
			// derived from an account key.
			derived := make([][]byte, len(keys))
			for i, k := range keys {
				derived[i] = keyValue(k, account, s.Delegation)
			}
			keys = derived
		case kind == AccountSAS:
			sts = accountSASString(account, s, q)
		default:
			if sts, e = serviceSASString(f.svc, account, p, s, q); e != nil {
				return Auth{}, e
			}
		}
		if !verifySignature(keys, []string{sts}, s.sig) {
			return Auth{}, authFailed("Signature did not match. String to sign used was %s", sts)
		}
		if s.Identifier != "" {
			if err := f.applyPolicy(ctx, account, p, s); err != nil {
				return Auth{}, err
			}
		}
		if e := checkSAS(r, f.svc, kind, s, f.now()); e != nil {
			return Auth{}, e
		}
		return Auth{Kind: kind, SAS: s}, nil
	}
	return Auth{Kind: Anonymous}, nil
}

func (f *front) keys(ctx context.Context, account string) ([][]byte, error) {
	keys, err := f.accounts.Keys(ctx, account)
	if errors.Is(err, ErrNoAccount) {
		return nil, authFailed("The account %s does not exist.", account)
	}
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// checkDate refuses a signed request whose date is far from ours.
func (f *front) checkDate(r *http.Request) error {
	d := r.Header.Get("x-ms-date")
	if d == "" {
		d = r.Header.Get("Date")
	}
	if d == "" {
		return authFailed("Request date header not specified.")
	}
	t, err := http.ParseTime(d)
	if err != nil {
		return authFailed("The Date header in the request is incorrect: %s", d)
	}
	if skew := f.now().Sub(t); skew > maxClockSkew || skew < -maxClockSkew {
		return authFailed("Request date header too old: '%s'", d)
	}
	return nil
}

func (f *front) fail(w http.ResponseWriter, r *http.Request, req *Request, err error) {
	switch e := asError(err); {
	case diskFull(err):
		f.log.Warn("storage: request refused, the disk is full", "service", f.svc, "account", req.Account, "request", req.RequestID, "err", err)
	case e.Status == http.StatusInternalServerError:
		f.log.Error("storage: request failed", "service", f.svc, "account", req.Account, "request", req.RequestID, "err", err)
	case e.Status == http.StatusForbidden:
		f.log.Debug("storage: request refused", "service", f.svc, "account", req.Account, "code", e.Code, "detail", e.AuthDetail)
	}
	WriteError(w, r, f.svc, err)
}

// validVersion reports whether v has the form YYYY-MM-DD.
func validVersion(v string) bool {
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

// newRequestID returns a random UUID, the form Azure's request ids take.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
