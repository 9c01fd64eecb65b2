package portal_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	weftapi "github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/daemon"
	"github.com/weftcloud/weft/internal/portal"
)

// server is a real `weft server` (one machine, with its storage) running
// in this process, and its admin token.
type server struct {
	url   string
	token string
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startServer(t testing.TB) server {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	data := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.RunServer(ctx, daemon.ServerConfig{
			Data: data, Listen: addr, Name: "s1",
			BlobPort: freePort(t), QueuePort: freePort(t), TablePort: freePort(t),
			Logger: slog.New(slog.DiscardHandler),
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	s := server{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tok, err := os.ReadFile(filepath.Join(data, daemon.AdminTokenFile))
		if err == nil {
			s.token = strings.TrimSpace(string(tok))
			if _, err := client.New(s.url).WithToken(s.token).Status(ctx); err == nil {
				return s
			}
		}
		select {
		case err := <-done:
			done <- err // for the cleanup, which waits for it too
			t.Fatalf("the server stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not start within 30s")
		}
	}
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t    testing.TB
	base string
	http *http.Client
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("%s has no form with a CSRF token:\n%s", path, body)
	}
	return m[1]
}

func (b *browser) signIn(token string) *http.Response {
	b.t.Helper()
	resp, _ := b.post("/signin", url.Values{"csrf": {b.csrf("/signin")}, "token": {token}})
	return resp
}

// TestSignInSessionAndHeaders: a page without a session sends the browser
// to sign in; every answer carries the strict CSP and its companions; the
// admin token signs in, and the session cookie is HttpOnly and
// SameSite=Strict; a wrong token shows the form again without saying why.
func TestSignInSessionAndHeaders(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	resp, _ := b.get("/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("/ without a session: %s to %q, want 303 to /signin", resp.Status, resp.Header.Get("Location"))
	}
	resp, body := b.get("/signin")
	for h, want := range map[string]string{
		"Content-Security-Policy": portal.CSP, "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "<style") {
		t.Errorf("the page has inline script or style:\n%s", body)
	}

	resp = b.signIn("not-the-token")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong token: %s, want 401", resp.Status)
	}
	if len(resp.Cookies()) != 0 && resp.Cookies()[0].Name == "weft_session" {
		t.Error("a wrong token got a session")
	}
	resp = b.signIn(s.token)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the admin token: %s", resp.Status)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "weft_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", session)
	}
	if strings.Contains(session.Value, s.token) {
		t.Error("the cookie holds the token in the clear (it is base64url-encoded)")
	}
	resp, body = b.get("/nodes")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nodes") {
		t.Fatalf("/nodes signed in as the operator: %s\n%s", resp.Status, body)
	}
	// Signing out ends the session.
	resp, _ = b.post("/signout", url.Values{"csrf": {b.csrf("/")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %s", resp.Status)
	}
	if resp, _ = b.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("/ after signing out: %s, want a redirect to sign in", resp.Status)
	}
}

// TestFormsWithoutTheCSRFTokenAreRefused: every POST needs the session's
// CSRF token (and the sign-in forms their own): without it or with a
// wrong one, 403 and nothing changes.
func TestFormsWithoutTheCSRFTokenAreRefused(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	if resp, _ := b.post("/signin", url.Values{"token": {s.token}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %s, want 403", resp.Status)
	}
	b.signIn(s.token)
	for _, form := range []url.Values{{}, {"csrf": {"0000"}}, {"csrf": {strings.Repeat("ab", 32)}}} {
		form.Set("name", "forged")
		if resp, _ := b.post("/storage", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("create an account with csrf %q: %s, want 403", form.Get("csrf"), resp.Status)
		}
	}
	accts, err := client.New(s.url).WithToken(s.token).StorageAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		if a.Name == "forged" {
			t.Fatal("a forged form created an account")
		}
	}
	// With the token the same form works.
	resp, _ := b.post("/storage", url.Values{"csrf": {b.csrf("/storage")}, "name": {"forged"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the same form with its token: %s", resp.Status)
	}
	// A multipart form (an upload) carries it as its first part.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("model", "m.yaml")
	fw.Write([]byte("name: x\n"))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/services", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if resp, _ := b.do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an upload without the token: %s, want 403", resp.Status)
	}
}

// TestSignInIsRateLimited: beyond the burst of attempts from one address
// the portal answers 429, even with the right token.
func TestSignInIsRateLimited(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	csrf := b.csrf("/signin")
	for i := range 10 {
		resp, body := b.post("/signin", url.Values{"csrf": {csrf}, "token": {"wrong"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %s, want 401", i+1, resp.Status)
		}
		if strings.Contains(body, "API token is not") {
			t.Fatalf("the refusal repeats the API's reason:\n%s", body)
		}
	}
	resp, _ := b.post("/signin", url.Values{"csrf": {csrf}, "token": {s.token}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("attempt 11: %s, want 429 with Retry-After", resp.Status)
	}
}

// TestHostileNamesAreEscaped: what users and the storage control (a
// blob's name, a page's path, a sign-in link's code) is shown as text,
// never as markup; a blob downloads as an attachment, never inline.
func TestHostileNamesAreEscaped(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	b.signIn(s.token)
	// No slash: a browser sends a file's base name only.
	const hostile = `"><img src=x onerror=alert(1)>`
	_, body := b.get("/" + url.PathEscape(hostile))
	_, link := b.get("/signin/" + url.PathEscape(hostile))
	csrf := b.csrf("/storage")
	b.post("/storage", url.Values{"csrf": {csrf}, "name": {"hostile"}})
	b.post("/storage/hostile/containers", url.Values{"csrf": {csrf}, "name": {"files"}})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", csrf)
	fw, _ := mw.CreateFormFile("file", hostile+".html")
	fw.Write([]byte("<script>alert(3)</script>"))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/storage/hostile/c/files/upload", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if resp, body := b.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: %s\n%s", resp.Status, body)
	}
	_, listing := b.get("/storage/hostile/c/files")
	for name, page := range map[string]string{"404": body, "sign-in link": link, "blob list": listing} {
		if strings.Contains(page, "<img src=x") {
			t.Errorf("%s page has the hostile markup unescaped:\n%s", name, page)
		}
		if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s page does not show the name as text:\n%s", name, page)
		}
	}
	resp, data := b.get("/storage/hostile/c/files/download?blob=" + url.QueryEscape(hostile+".html"))
	if resp.StatusCode != http.StatusOK || data != "<script>alert(3)</script>" {
		t.Fatalf("download: %s %q", resp.Status, data)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition %q, want an attachment", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q, want application/octet-stream", ct)
	}
}

// TestFirstPagesWeighLittle: the sign-in page and the dashboard, with the
// stylesheet and script they load, are under 100 KB.
func TestFirstPagesWeighLittle(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	assets := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`)
	weigh := func(path string) int {
		_, body := b.get(path)
		total := len(body)
		for _, m := range assets.FindAllStringSubmatch(body, -1) {
			resp, asset := b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
			if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
				t.Errorf("%s: %s, Cache-Control %q", m[1], resp.Status, resp.Header.Get("Cache-Control"))
			}
			total += len(asset)
		}
		return total
	}
	if n := weigh("/signin"); n >= 100<<10 {
		t.Errorf("the sign-in page weighs %d bytes", n)
	}
	b.signIn(s.token)
	if n := weigh("/"); n >= 100<<10 {
		t.Errorf("the dashboard weighs %d bytes", n)
	}
}

// TestEventsRelayTheAPIStream: /events sends the API's events, as they
// happen, as server-sent events: the in-process call streams.
func TestEventsRelayTheAPIStream(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.url)
	b.signIn(s.token)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/events", nil)
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// A deployed service (with no node to run on) is an event.
	api := client.New(s.url).WithToken(s.token)
	var pkg bytes.Buffer
	gz := gzip.NewWriter(&pkg)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "run", Mode: 0o755, Size: 2})
	tw.Write([]byte("#!"))
	tw.Close()
	gz.Close()
	p, err := api.UploadPackage(ctx, &pkg)
	if err != nil {
		t.Fatal(err)
	}
	spec := weftapi.ServiceSpec{Name: "waits", Roles: []weftapi.RoleSpec{{Name: "work", Kind: weftapi.KindWorker,
		Runtime: weftapi.RuntimeProcess, Package: p.Digest, Command: []string{"./run"}, Instances: 1}}}
	deployed := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, err := api.Deploy(ctx, spec)
		deployed <- err
	}()
	// The event may come before the deploy's answer: wait for both.
	defer func() {
		if err := <-deployed; err != nil {
			t.Errorf("deploy: %v", err)
		}
	}()
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "event: change") {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("the stream ended (%v) with no change event:\n%s", err, got.String())
		}
	}
}
