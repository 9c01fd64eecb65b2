package controlapi

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/weftcloud/weft/api"
)

// maxPageLimit is the largest page a caller may ask for.
const maxPageLimit = 10000

// okPage answers a list in pages when the caller asks for them
// (?limit=N&after=KEY): the items whose key comes after KEY, in key order,
// at most N, and a Link header (rel="next") naming the next page while
// more remain. Keys are unique in the list (tenant/name; an account's name,
// which is global; an instance's ID), so an item added or removed between two pages moves no other item
// from one page to another. Without ?limit the whole list is the answer,
// as it was before pages.
func okPage[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string) error {
	q := r.URL.Query()
	raw := q.Get("limit")
	if raw == "" {
		if q.Has("after") {
			return api.Errorf(api.CodeInvalid, "after: pages need a limit too (?limit=N&after=KEY)")
		}
		return ok(w, nonNil(items))
	}
	limit, err := strconv.Atoi(raw)
	if err != nil || limit < 1 || limit > maxPageLimit {
		return api.Errorf(api.CodeInvalid, "limit: %q is not a number of items from 1 to %d", raw, maxPageLimit)
	}
	byKey := func(a, b T) int { return cmp.Compare(key(a), key(b)) }
	sorted := items // lists mostly come in key order already
	if !slices.IsSortedFunc(sorted, byKey) {
		sorted = slices.Clone(items)
		slices.SortFunc(sorted, byKey)
	}
	after := q.Get("after")
	start, _ := slices.BinarySearchFunc(sorted, after, func(it T, k string) int { return cmp.Compare(key(it), k) })
	if start < len(sorted) && after != "" && key(sorted[start]) == after {
		start++
	}
	end := min(start+limit, len(sorted))
	page := sorted[start:end]
	if end < len(sorted) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", key(page[len(page)-1]))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", "<"+(&url.URL{Path: next.Path, RawQuery: next.RawQuery}).String()+`>; rel="next"`)
	}
	return ok(w, nonNil(page))
}

// tenantKey is the page key of an object named within its tenant.
func tenantKey(tenant, name string) string { return tenant + "/" + name }
