package storage

import (
	"net/http"
	"strconv"
	"strings"
)

// CORS: browsers ask with a preflight OPTIONS before a cross-origin call;
// the answer comes from the service's rules (the first rule that matches
// the origin, method and requested headers), and real answers carry the
// Access-Control headers of the rule that matches.
// https://learn.microsoft.com/rest/api/storageservices/cross-origin-resource-sharing--cors--support-for-the-azure-storage-services

func (f *front) rules(account string) []CORSRule {
	if c, ok := f.h.(CORSRules); ok {
		return c.CORSRules(account)
	}
	return nil
}

func (f *front) preflight(w http.ResponseWriter, r *http.Request, req *Request) {
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if origin == "" || method == "" {
		WriteError(w, r, f.svc, Errorf(http.StatusBadRequest, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified."))
		return
	}
	var requested []string
	for h := range strings.SplitSeq(r.Header.Get("Access-Control-Request-Headers"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			requested = append(requested, strings.ToLower(h))
		}
	}
	rule, ok := matchRule(f.rules(req.Account), origin, method, requested)
	if !ok {
		WriteError(w, r, f.svc, Errorf(http.StatusForbidden, "CorsPreflightFailure", "CORS not enabled or no matching rule found for this request."))
		return
	}
	h := w.Header()
	setAllowOrigin(h, rule, origin)
	h.Set("Access-Control-Allow-Methods", method)
	if len(requested) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(requested, ","))
	}
	h.Set("Access-Control-Max-Age", strconv.Itoa(rule.MaxAgeInSeconds))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (f *front) decorateCORS(h http.Header, account, origin, method string) {
	rule, ok := matchRule(f.rules(account), origin, method, nil)
	if !ok {
		return
	}
	setAllowOrigin(h, rule, origin)
	if len(rule.ExposedHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(rule.ExposedHeaders, ","))
	}
}

func setAllowOrigin(h http.Header, rule CORSRule, origin string) {
	if len(rule.AllowedOrigins) == 1 && rule.AllowedOrigins[0] == "*" {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

func matchRule(rules []CORSRule, origin, method string, headers []string) (CORSRule, bool) {
	for _, rule := range rules {
		if !anyMatch(rule.AllowedOrigins, origin, false) {
			continue
		}
		if !anyMatch(rule.AllowedMethods, method, false) {
			continue
		}
		ok := true
		for _, h := range headers {
			if !anyMatch(rule.AllowedHeaders, h, true) {
				ok = false
				break
			}
		}
		if ok {
			return rule, true
		}
	}
	return CORSRule{}, false
}

// anyMatch reports whether v matches one of the patterns: "*", an exact
// value (case-insensitive) or, with prefixes, "x-ms-meta-*".
func anyMatch(patterns []string, v string, prefixes bool) bool {
	for _, p := range patterns {
		switch {
		case p == "*", strings.EqualFold(p, v):
			return true
		case prefixes && strings.HasSuffix(p, "*") && strings.HasPrefix(strings.ToLower(v), strings.ToLower(strings.TrimSuffix(p, "*"))):
			return true
		}
	}
	return false
}
