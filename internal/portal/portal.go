// Package portal is Weft's web portal, served by every server on the API
// address for every path outside /v1/. It is a client of the REST API and
// nothing more: every page and action calls the server's own API handler
// in-process (inprocess.go) with the signed-in user's token, so the API
// authenticates and authorizes each call and the portal shows exactly what
// that token may see and do.
//
// Pages are server-rendered html/template pages with one stylesheet and
// one small script (static/), embedded in the binary. The session is the
// token itself, in an HttpOnly, SameSite=Strict cookie: any server of the
// cluster serves any session, with nothing kept server-side. Every form
// carries a CSRF token derived from the session's token (session.go).
// Live pages refresh their marked fragments when the API's event stream
// (relayed as server-sent events by /events) says something changed.
package portal

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Options adjust a portal.
type Options struct {
	Logger *slog.Logger
	// SignInPerMinute and SignInBurst bound sign-in attempts from one
	// remote address (default 5 a minute, bursts of 10); beyond, 429.
	SignInPerMinute float64
	SignInBurst     int
	// MaxUpload bounds a blob uploaded through the portal (default 256 MiB).
	MaxUpload int64
}

// CSP is the Content-Security-Policy of every answer: no inline script or
// style, nothing from elsewhere, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type portal struct {
	api       http.Handler
	log       *slog.Logger
	pages     map[string]*template.Template
	static    map[string]staticFile
	limiter   *limiter
	maxUpload int64
}

type staticFile struct {
	data        []byte
	hash        string // of data, in the URL and the ETag
	contentType string
}

// New returns the portal's handler over api, the server's full API
// handler chain (authentication, the access table, forwarding to the
// leader), which it calls for every page and action.
func New(apiHandler http.Handler, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SignInPerMinute <= 0 {
		opts.SignInPerMinute = 5
	}
	if opts.SignInBurst <= 0 {
		opts.SignInBurst = 10
	}
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = 256 << 20
	}
	p := &portal{
		api: apiHandler, log: opts.Logger, maxUpload: opts.MaxUpload,
		limiter: newLimiter(opts.SignInPerMinute/60, float64(opts.SignInBurst)),
	}
	p.static = loadStatic()
	p.pages = p.parsePages()
	return securityHeaders(p.routes())
}

func (p *portal) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", p.serveStatic)
	mux.HandleFunc("GET /signin", p.signInPage)
	mux.HandleFunc("POST /signin", p.signIn)
	mux.HandleFunc("GET /signin/{code}", p.signInLinkPage)
	mux.HandleFunc("POST /signin/link", p.signInLink)
	mux.Handle("POST /signout", p.session(p.signOut))
	mux.Handle("GET /events", p.session(p.events))

	mux.Handle("GET /{$}", p.session(p.dashboard))
	mux.Handle("GET /vms", p.session(p.vms))
	mux.Handle("POST /vms", p.session(p.createVM))
	mux.Handle("GET /vms/{name}", p.session(p.vm))
	mux.Handle("POST /vms/{name}/{action}", p.session(p.vmAction))
	mux.Handle("GET /services", p.session(p.services))
	mux.Handle("POST /services", p.session(p.deploy))
	mux.Handle("GET /services/{name}", p.session(p.service))
	mux.Handle("POST /services/{name}/{action}", p.session(p.serviceAction))
	mux.Handle("GET /instances/{id}", p.session(p.instance))

	mux.Handle("GET /storage", p.session(p.accounts))
	mux.Handle("POST /storage", p.session(p.createAccount))
	mux.Handle("GET /storage/{account}", p.session(p.account))
	mux.Handle("POST /storage/{account}/{action}", p.session(p.accountAction))
	mux.Handle("GET /storage/{account}/c/{container}", p.session(p.container))
	mux.Handle("POST /storage/{account}/c/{container}/{action}", p.session(p.containerAction))
	mux.Handle("GET /storage/{account}/c/{container}/download", p.session(p.download))

	mux.Handle("GET /nodes", p.session(p.nodes))
	mux.Handle("POST /nodes/{name}/{action}", p.session(p.nodeAction))
	mux.Handle("GET /tenants", p.session(p.tenants))
	mux.Handle("POST /tenants", p.session(p.createTenant))
	mux.Handle("POST /tenants/{name}/quota", p.session(p.setQuota))
	mux.Handle("GET /tokens", p.session(p.tokens))
	mux.Handle("POST /tokens", p.session(p.createToken))
	mux.Handle("POST /tokens/{id}/delete", p.session(p.deleteToken))
	mux.Handle("GET /usage", p.session(p.usage))
	mux.Handle("GET /audit", p.session(p.audit))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.render(w, r, http.StatusNotFound, "error", nil, errorView{Message: "There is no page " + r.URL.Path + "."})
	})
	return mux
}

// securityHeaders sets what every answer carries: the CSP, no sniffing,
// no referrer, and no caching except of static files (which set their own).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func loadStatic() map[string]staticFile {
	files := map[string]staticFile{}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	entries, _ := fs.ReadDir(staticFiles, "static")
	for _, e := range entries {
		data, err := staticFiles.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		sum := sha256.Sum256(data)
		files[e.Name()] = staticFile{data: data, hash: hex.EncodeToString(sum[:8]), contentType: types[path.Ext(e.Name())]}
	}
	return files
}

// serveStatic serves an embedded file. Pages link it with its content's
// hash in the query (staticURL), so it may be cached for long: a new build
// with other content links another URL.
func (p *portal) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := p.static[r.PathValue("file")]
	if !ok || f.contentType == "" {
		http.NotFound(w, r)
		return
	}
	etag := `"` + f.hash + `"`
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", etag)
	if r.URL.Query().Get("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(f.data)
}

func (p *portal) staticURL(name string) string {
	return "/static/" + name + "?v=" + p.static[name].hash
}

// view is what every page's template gets.
type view struct {
	Title string
	Nav   string // the section, to mark in the navigation
	S     *session
	CSRF  string
	Data  any
}

type errorView struct {
	Message string
	Back    string
}

func (p *portal) parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"static": p.staticURL,
		"when":   func(t time.Time) string { return formatTime(t) },
		"bytes":  formatBytes,
		"join":   strings.Join,
		"pct":    percent,
		"list":   func(xs ...string) []string { return xs },
		"domains": func(n int) []int {
			out := make([]int, n)
			for i := range out {
				out[i] = i
			}
			return out
		},
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	pages := map[string]*template.Template{}
	names, _ := fs.Glob(templateFiles, "templates/*.html")
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".html")
		if base == "layout" {
			continue
		}
		pages[base] = template.Must(template.Must(layout.Clone()).ParseFS(templateFiles, name))
	}
	return pages
}

// render writes a page: the layout around the page's "content" template.
func (p *portal) render(w http.ResponseWriter, r *http.Request, status int, page string, s *session, data any) {
	v := view{Title: titles[page], Nav: page, S: s, Data: data}
	if t, ok := data.(interface{ PageTitle() string }); ok {
		v.Title = t.PageTitle()
	}
	if s != nil {
		v.CSRF = s.csrf
	}
	var b strings.Builder
	if err := p.pages[page].ExecuteTemplate(&b, "layout.html", v); err != nil {
		p.log.Error("portal: render", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

var titles = map[string]string{
	"signin": "Sign in", "dashboard": "Dashboard", "vms": "Virtual machines", "vm": "Virtual machine",
	"services": "Services", "service": "Service", "instance": "Instance", "accounts": "Storage accounts",
	"account": "Storage account", "container": "Container", "nodes": "Nodes", "tenants": "Tenants",
	"tokens": "Tokens", "usage": "Usage and bills", "audit": "Audit log", "error": "Error",
}

// fail renders err as an error page: an API error with its status and
// message, anything else as a 500 that says no more than that.
func (p *portal) fail(w http.ResponseWriter, r *http.Request, s *session, err error, back string) {
	var e *api.Error
	if !errors.As(err, &e) {
		p.log.Error("portal: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &api.Error{Code: api.CodeInternal, Message: "the request failed on the server (see its log)"}
	}
	if e.Code == api.CodeUnauthorized {
		// The token expired or was revoked: sign in again.
		clearSession(w, r)
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	p.render(w, r, api.HTTPStatus(e), "error", s, errorView{Message: e.Message, Back: back})
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// formatBytes shows a size: an api.Bytes or a count of bytes.
func formatBytes(v any) string {
	switch b := v.(type) {
	case api.Bytes:
		return b.String()
	case *api.Bytes:
		return b.String()
	case int64:
		return api.Bytes(b).String()
	}
	return fmt.Sprint(v)
}

func percent(used, limit float64) string {
	if limit <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*used/limit)
}
