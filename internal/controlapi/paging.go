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
// more remain. Keys are unique in the list (tenant/name; an account's
// name, which is global; an instance's ID), so an item added or removed
// between two pages moves no other item from one page to another. Without
// ?limit the whole list is the answer, as it was before pages.
func okPage[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string) error {
	q, err := pageOf(r)
	if err != nil {
		return err
	}
	if !q.paged {
		return ok(w, nonNil(items))
	}
	byKey := func(a, b T) int { return cmp.Compare(key(a), key(b)) }
	sorted := items // lists mostly come in key order already
	if !slices.IsSortedFunc(sorted, byKey) {
		sorted = slices.Clone(items)
		slices.SortFunc(sorted, byKey)
	}
	start, _ := slices.BinarySearchFunc(sorted, q.after, func(it T, k string) int { return cmp.Compare(key(it), k) })
	if start < len(sorted) && q.after != "" && key(sorted[start]) == q.after {
		start++
	}
	end := min(start+q.limit, len(sorted))
	page := sorted[start:end]
	next := ""
	if end < len(sorted) {
		next = key(page[len(page)-1])
	}
	return writePage(w, r, page, next)
}

// pageQuery is a list request's ?limit=&after=; not paged when the
// caller asks for the whole list.
type pageQuery struct {
	paged bool
	limit int
	after string
}

func pageOf(r *http.Request) (pageQuery, error) {
	q := r.URL.Query()
	raw := q.Get("limit")
	if raw == "" {
		if q.Has("after") {
			return pageQuery{}, api.Errorf(api.CodeInvalid, "after: pages need a limit too (?limit=N&after=KEY)")
		}
		return pageQuery{}, nil
	}
	limit, err := strconv.Atoi(raw)
	if err != nil || limit < 1 || limit > maxPageLimit {
		return pageQuery{}, api.Errorf(api.CodeInvalid, "limit: %q is not a number of items from 1 to %d", raw, maxPageLimit)
	}
	return pageQuery{paged: true, limit: limit, after: q.Get("after")}, nil
}

// writePage answers one page; next is its last item's key when more
// follow, and goes into the Link to the next page.
func writePage[T any](w http.ResponseWriter, r *http.Request, page []T, next string) error {
	if next != "" {
		u := *r.URL
		nq := u.Query()
		nq.Set("after", next)
		w.Header().Set("Link", "<"+(&url.URL{Path: u.Path, RawQuery: nq.Encode()}).String()+`>; rel="next"`)
	}
	return ok(w, nonNil(page))
}

// writeReadPage answers a page its list read from the state a page at a
// time; more reports whether items follow it.
func writeReadPage[T any](w http.ResponseWriter, r *http.Request, page []T, more bool, key func(T) string) error {
	next := ""
	if more && len(page) > 0 {
		next = key(page[len(page)-1])
	}
	return writePage(w, r, page, next)
}

// tenantKey is the page key of an object named within its tenant.
func tenantKey(tenant, name string) string { return tenant + "/" + name }
