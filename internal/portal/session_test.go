package portal

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSessionCookieIsSecureUnderTLS: a session made over TLS is a Secure
// cookie, and its clearing too; over plain HTTP (one machine, loopback)
// it cannot be.
func TestSessionCookieIsSecureUnderTLS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		secure bool
	}{{"tls", &tls.ConnectionState{}, true}, {"plain", nil, false}} {
		r := httptest.NewRequest(http.MethodPost, "/signin", nil)
		r.TLS = tc.tls
		w := httptest.NewRecorder()
		setSession(w, r, "tok")
		clearSession(w, r)
		for _, c := range w.Result().Cookies() {
			if c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("%s: cookie %+v: Secure %v, want %v, HttpOnly, SameSite=Strict", tc.name, c, c.Secure, tc.secure)
			}
		}
	}
}

// TestLimiterRefills: a bucket lets its burst through, refuses the next,
// lets one more through once a token has refilled, and counts each
// address apart.
func TestLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(5.0/60, 10)
	l.now = func() time.Time { return now }
	for i := range 10 {
		if !l.allow("a") {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	if l.allow("a") {
		t.Fatal("the 11th attempt was let through")
	}
	if !l.allow("b") {
		t.Fatal("another address was refused")
	}
	now = now.Add(12 * time.Second) // one token at 5 a minute
	if !l.allow("a") || l.allow("a") {
		t.Fatal("after 12s exactly one more attempt should pass")
	}
}
