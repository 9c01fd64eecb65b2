package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/client"
)

// Cookies. The session cookie holds the API token itself (base64url, so
// any token is a valid cookie value); the sign-in cookie is the CSRF
// secret of the forms shown before there is a session.
const (
	sessionCookie = "weft_session"
	signInCookie  = "weft_signin"
	csrfField     = "csrf"
)

// session is a signed-in user: the token, who the API takes it for, and
// a client that calls the API in-process with it.
type session struct {
	token string
	csrf  string
	Who   WhoAmI
	api   *client.Client
	// form is a multipart POST's body, after its first part (the CSRF
	// token): read as a stream by the handler (uploads).
	form *multipart.Reader
}

// Operator reports whether the session may see the operator's pages.
func (s *session) Operator() bool { return s.Who.Role == "operator" }

// csrfToken is the CSRF token of a session: an HMAC of a constant keyed
// with the session's token. Only a page rendered for that token carries
// it, and it needs no state on any server.
func csrfToken(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("weft-csrf"))
	return hex.EncodeToString(m.Sum(nil))
}

func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// client is an API client acting with token for the request r.
func (p *portal) client(r *http.Request, token string) *client.Client {
	// The address is never dialled: the transport serves every request
	// in-process.
	return client.New("http://weft-portal.invalid").WithTransport(inProcess{api: p.api, remote: r.RemoteAddr}).WithToken(token)
}

// session wraps a page or action that needs a signed-in user: without a
// session cookie it sends the browser to sign in; a POST without the
// session's CSRF token is refused (403) before anything else happens.
func (p *portal) session(h func(http.ResponseWriter, *http.Request, *session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := sessionToken(r)
		if token == "" {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			p.render(w, r, http.StatusForbidden, "error", nil, errorView{Message: "You are not signed in.", Back: "/signin"})
			return
		}
		s := &session{token: token, csrf: csrfToken(token), api: p.client(r, token)}
		if r.Method == http.MethodPost {
			var got string
			if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				// An upload streams: its form puts the CSRF token first,
				// checked before the rest of the body is read.
				got, s.form = firstPart(r)
			} else {
				r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
				got = r.PostFormValue(csrfField)
			}
			if !sameSecret(got, s.csrf) {
				p.render(w, r, http.StatusForbidden, "error", nil, errorView{Message: "The form's security token is missing or wrong: reload the page and try again.", Back: "/"})
				return
			}
		}
		who, err := whoAmI(r.Context(), s.api)
		if err != nil {
			p.fail(w, r, nil, err, "/signin")
			return
		}
		s.Who = who
		if err := h(w, r, s); err != nil {
			p.fail(w, r, s, err, parentPath(r.URL.Path))
		}
	})
}

// firstPart reads a multipart form's first part, which must be the CSRF
// token, and returns it with the reader of the remaining parts.
func firstPart(r *http.Request) (string, *multipart.Reader) {
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != csrfField {
		return "", nil
	}
	buf := make([]byte, 128)
	n, _ := io.ReadFull(part, buf)
	return string(buf[:n]), mr
}

// parentPath is the page above: where an action's page is (/vms/web/stop
// -> /vms/web), or the list a missing object is in (/vms/web -> /vms).
func parentPath(p string) string {
	if i := strings.LastIndex(strings.TrimRight(p, "/"), "/"); i > 0 {
		return p[:i]
	}
	return "/"
}

func sessionToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	tok, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return ""
	}
	return string(tok)
}

func setSession(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(token)), Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// signInSecret is the CSRF secret of the sign-in forms (a double-submit
// cookie): the one the browser has, or a new one it is given.
func signInSecret(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(signInCookie); err == nil && len(c.Value) == 32 {
		return c.Value
	}
	b := make([]byte, 16)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: signInCookie, Value: secret, Path: "/signin",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	return secret
}

type signInView struct {
	Code  string // a one-time link's
	Error string
}

func (p *portal) signInPage(w http.ResponseWriter, r *http.Request) {
	p.renderSignIn(w, r, http.StatusOK, signInView{})
}

func (p *portal) signInLinkPage(w http.ResponseWriter, r *http.Request) {
	p.renderSignIn(w, r, http.StatusOK, signInView{Code: r.PathValue("code")})
}

func (p *portal) renderSignIn(w http.ResponseWriter, r *http.Request, status int, v signInView) {
	secret := signInSecret(w, r)
	p.render(w, r, status, "signin", &session{csrf: secret}, v)
}

// signInAttempt checks what every sign-in form must pass: the form's CSRF
// secret and the rate limit of the caller's address. It answers the
// refusal itself and returns false.
func (p *portal) signInAttempt(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	c, err := r.Cookie(signInCookie)
	if err != nil || !sameSecret(r.PostFormValue(csrfField), c.Value) {
		p.render(w, r, http.StatusForbidden, "error", nil, errorView{Message: "The sign-in form's security token is missing or wrong: open the sign-in page again.", Back: "/signin"})
		return false
	}
	if !p.limiter.allow(remoteHost(r)) {
		w.Header().Set("Retry-After", "60")
		p.render(w, r, http.StatusTooManyRequests, "error", nil, errorView{Message: "Too many sign-in attempts from your address: wait a minute and try again.", Back: "/signin"})
		return false
	}
	return true
}

// signIn takes an API token: one the API accepts becomes the session.
func (p *portal) signIn(w http.ResponseWriter, r *http.Request) {
	if !p.signInAttempt(w, r) {
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		p.renderSignIn(w, r, http.StatusBadRequest, signInView{Error: "Enter an API token."})
		return
	}
	if _, err := whoAmI(r.Context(), p.client(r, token)); err != nil {
		// Never which part was wrong, nor the API's message.
		p.log.Info("portal: sign-in refused", "remote", r.RemoteAddr, "err", err)
		p.renderSignIn(w, r, http.StatusUnauthorized, signInView{Error: "Sign-in failed: that token is not accepted."})
		return
	}
	setSession(w, r, token)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signInLink trades a one-time link's code for a token.
func (p *portal) signInLink(w http.ResponseWriter, r *http.Request) {
	if !p.signInAttempt(w, r) {
		return
	}
	code := r.PostFormValue("code")
	tok, err := createSession(r.Context(), p.client(r, ""), code)
	if err != nil || tok.Token == "" {
		p.log.Info("portal: sign-in link refused", "remote", r.RemoteAddr, "err", err)
		p.renderSignIn(w, r, http.StatusUnauthorized, signInView{Error: "Sign-in failed: this link is not valid (it works once, and expires)."})
		return
	}
	setSession(w, r, tok.Token)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *portal) signOut(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := endSession(r.Context(), s.api); err != nil {
		p.log.Warn("portal: sign-out: the API kept the session", "err", err)
	}
	clearSession(w, r)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter is a token bucket per remote address.
type limiter struct {
	rate, burst float64 // tokens a second, most kept
	now         func() time.Time
	mu          sync.Mutex
	buckets     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perSecond, burst float64) *limiter {
	return &limiter{rate: perSecond, burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// maxBuckets bounds the limiter's memory: beyond, full buckets (addresses
// not seen for long enough to refill) are forgotten.
const maxBuckets = 10000

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
