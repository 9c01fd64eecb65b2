package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Shared Key and Shared Key Lite: the client signs a canonical form of the
// request with HMAC-SHA256 under one of the account's keys. The canonical
// form differs by service (table signs far less) and by API version.
// https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key

// sharedKeyStrings returns the strings a client may have signed for r. There
// is more than one because the standard leaves room: a client that sends
// x-ms-date may sign the Date line empty or not, and a path-style client
// may or may not repeat the account in the canonicalized resource (the
// emulator convention is to repeat it). Verification accepts any of them.
func sharedKeyStrings(r *http.Request, svc Service, account string, lite, pathStyle bool) []string {
	version := r.Header.Get("x-ms-version")
	raw := rawPath(r)
	paths := []string{raw}
	if pathStyle {
		// raw is /ACCOUNT/rest; also accept a signature over /rest.
		rest := strings.TrimPrefix(raw, "/"+account)
		if rest == "" {
			rest = "/"
		}
		paths = append(paths, rest)
	}
	dates := []string{r.Header.Get("Date")}
	if r.Header.Get("x-ms-date") != "" && dates[0] != "" {
		dates = append(dates, "")
	}
	var out []string
	for _, p := range paths {
		for _, d := range dates {
			out = append(out, stringToSign(r, svc, account, p, d, version, lite))
		}
	}
	return out
}

// stringToSign builds one canonical string for r, with path the escaped
// request path and date the value of the Date line.
func stringToSign(r *http.Request, svc Service, account, path, date, version string, lite bool) string {
	h := r.Header
	if svc == Table {
		// Table signs x-ms-date in the Date slot when present, and no headers.
		d := h.Get("x-ms-date")
		if d == "" {
			d = h.Get("Date")
		}
		res := compResource(account, path, r.URL.Query())
		if lite {
			return d + "\n" + res
		}
		return r.Method + "\n" + h.Get("Content-MD5") + "\n" + h.Get("Content-Type") + "\n" + d + "\n" + res
	}
	if lite {
		return r.Method + "\n" + h.Get("Content-MD5") + "\n" + h.Get("Content-Type") + "\n" + date + "\n" +
			canonicalHeaders(h) + compResource(account, path, r.URL.Query())
	}
	length := h.Get("Content-Length")
	if length == "0" && versionAtLeast(version, "2015-02-21") {
		length = ""
	}
	var b strings.Builder
	for _, v := range []string{
		r.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), length, h.Get("Content-MD5"),
		h.Get("Content-Type"), date, h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"),
		h.Get("If-Unmodified-Since"), h.Get("Range"),
	} {
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(canonicalHeaders(h))
	if versionAtLeast(version, "2009-09-19") {
		b.WriteString(fullResource(account, path, r.URL.Query()))
	} else {
		b.WriteString(compResource(account, path, r.URL.Query()))
	}
	return b.String()
}

// canonicalHeaders is every x-ms- header, lower-cased, sorted by name, one
// "name:value\n" line each, with runs of white space folded to one space.
// Names are read as stored, not through Header.Get: the front end keeps
// metadata names in the case the client sent (rawNames).
func canonicalHeaders(h http.Header) string {
	byName := map[string][]string{}
	for k, vs := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			byName[lk] = append(byName[lk], vs...)
		}
	}
	names := slices.Sorted(maps.Keys(byName))
	var b strings.Builder
	for _, n := range names {
		vals := byName[n]
		folded := make([]string, len(vals))
		for i, v := range vals {
			folded[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strings.Join(folded, ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// fullResource is the 2009-09-19 and later canonicalized resource: the
// path, then every query parameter, lower-cased and sorted, values sorted
// and comma-joined.
func fullResource(account, path string, q url.Values) string {
	var b strings.Builder
	b.WriteString("/" + account + path)
	lower := map[string][]string{}
	for k, vs := range q {
		lk := strings.ToLower(k)
		lower[lk] = append(lower[lk], vs...)
	}
	names := make([]string, 0, len(lower))
	for k := range lower {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		vs := lower[n]
		sort.Strings(vs)
		b.WriteString("\n" + n + ":" + strings.Join(vs, ","))
	}
	return b.String()
}

// compResource is the older canonicalized resource (Shared Key Lite, table,
// and Shared Key before 2009-09-19): the path and only ?comp=.
func compResource(account, path string, q url.Values) string {
	res := "/" + account + path
	if c, ok := q["comp"]; ok && len(c) > 0 {
		res += "?comp=" + c[0]
	}
	return res
}

// rawPath is the request path exactly as the client sent it, which is what
// it signed ("encoded exactly as it is in the URI").
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		// Absolute-form request target, as sent to proxies.
		if u, err := url.Parse(p); err == nil {
			p = u.EscapedPath()
		}
	}
	if p == "" {
		p = r.URL.EscapedPath()
	}
	if p == "" {
		p = "/"
	}
	return p
}

// sign returns the base64 HMAC-SHA256 of s under key.
func sign(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// verifySignature reports whether sig (base64) is the signature of any of
// the candidate strings under any of the keys, in constant time per compare.
func verifySignature(keys [][]byte, candidates []string, sig string) bool {
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	ok := false
	for _, k := range keys {
		for _, c := range candidates {
			if hmac.Equal(sign(k, c), want) {
				ok = true
			}
		}
	}
	return ok
}

// versionAtLeast compares two YYYY-MM-DD versions; an empty version is
// taken as the newest, as the service then uses its own.
func versionAtLeast(v, min string) bool {
	if v == "" {
		return true
	}
	return v >= min
}
