package table

import (
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
)

// maxScan bounds the entities one query request examines. Like Azure, a
// query that finds few matches in a large range answers a short (even
// empty) page with a continuation rather than holding a read transaction
// open across the whole table.
const maxScan = 20_000

// queryEntities serves GET table() with $filter, $select, $top and the
// NextPartitionKey/NextRowKey continuation.
func (s *Service) queryEntities(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource) error {
	if err := req.Allow('r', storage.ResObject); err != nil {
		return err
	}
	if err := checkSASTable(req, res.table); err != nil {
		return err
	}
	q := r.URL.Query()
	filter, err := parseFilter(q.Get("$filter"))
	if err != nil {
		return storage.Errorf(http.StatusBadRequest, "InvalidInput", "%s", err)
	}
	top, err := parseTop(q.Get("$top"))
	if err != nil {
		return err
	}
	rng := planRange(filter)
	rng = intersectSAS(req, rng)
	if npk := q.Get("NextPartitionKey"); npk != "" {
		pk, err := decodeToken(npk)
		if err != nil {
			return err
		}
		rk := ""
		if nrk := q.Get("NextRowKey"); nrk != "" {
			if rk, err = decodeToken(nrk); err != nil {
				return err
			}
		}
		if k := entityKey(pk, rk); string(k) > string(rng.lo) {
			rng.lo = k
		}
	}
	var page []*entity
	var nextPK, nextRK string
	more := false
	scanned := 0
	// An empty range still runs, for its 404 when the table is missing.
	err = s.st.scan(req.Account, strings.ToLower(res.table), rng.lo, rng.hi, func(k, v []byte) (bool, error) {
		pk, rk, ok := splitKey(k)
		if !ok {
			return true, nil
		}
		if len(page) == top || scanned == maxScan {
			nextPK, nextRK, more = pk, rk, true
			return false, nil
		}
		scanned++
		if !sasAllows(req, pk, rk) {
			return true, nil
		}
		e, err := decodeEntity(pk, rk, v)
		if err != nil {
			return false, err
		}
		if match(filter, e) {
			page = append(page, e)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	setCommon(w)
	if more {
		w.Header().Set("x-ms-continuation-NextPartitionKey", encodeToken(nextPK))
		w.Header().Set("x-ms-continuation-NextRowKey", encodeToken(nextRK))
	}
	md := responseMetadata(r)
	c := &docContext{md: md, base: baseURL(r, req), account: req.Account, table: res.table, sel: selectList(q.Get("$select"))}
	b := make([]byte, 0, 256*len(page)+128)
	b = append(b, '{')
	if md != noMetadata {
		b = append(b, `"odata.metadata":`...)
		b = appendString(b, c.base+"$metadata#"+res.table)
		b = append(b, ',')
	}
	b = append(b, `"value":[`...)
	for i, e := range page {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntity(b, c, e, false)
	}
	b = append(b, "]}"...)
	w.Header().Set("Content-Type", md.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}
