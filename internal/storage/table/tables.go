package table

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// validTableName applies Azure's rule: 3-63 ASCII letters and digits,
// starting with a letter, and not the reserved "tables".
func validTableName(n string) bool {
	if len(n) < 3 || len(n) > 63 || strings.EqualFold(n, "tables") {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		isLetter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !isLetter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func invalidTableName(n string) error {
	return storage.Errorf(http.StatusBadRequest, "InvalidResourceName", "The specified resource name %q is not valid.", n)
}

func tableNotFound() error {
	return storage.Errorf(http.StatusNotFound, "TableNotFound", "The table specified does not exist.")
}

func (s *Service) createTable(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	if err := req.AllowCreate(); err != nil {
		return err
	}
	body, err := storage.ReadBody(r.Body, 64<<10)
	if err != nil {
		return err
	}
	var in struct {
		TableName *string `json:"TableName"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return badInput("The request body is not valid JSON.")
	}
	if in.TableName == nil {
		return storage.Errorf(http.StatusBadRequest, "PropertiesNeedValue", "TableName is required.")
	}
	name := *in.TableName
	if !validTableName(name) {
		return invalidTableName(name)
	}
	lower := strings.ToLower(name)
	var exists bool
	err = s.st.update(func(tx *boltlog.Tx) error {
		exists = false
		a, err := tx.CreateBucketIfNotExists(accountBucketName(req.Account))
		if err != nil {
			return fmt.Errorf("table: create account bucket: %w", err)
		}
		tb, err := a.CreateBucketIfNotExists(tablesBucket)
		if err != nil {
			return fmt.Errorf("table: create tables bucket: %w", err)
		}
		if tb.Get([]byte(lower)) != nil {
			exists = true
			return nil
		}
		if err := tb.Put([]byte(lower), []byte(name)); err != nil {
			return fmt.Errorf("table: record table %s: %w", name, err)
		}
		if err := forgetPolicies(a, lower); err != nil {
			return err
		}
		if b := a.Bucket(tableBucketName(lower)); b != nil {
			// Left by a failed delete; a new table starts empty.
			if err := a.DeleteBucket(tableBucketName(lower)); err != nil {
				return fmt.Errorf("table: clear table %s: %w", name, err)
			}
		}
		if _, err := a.CreateBucket(tableBucketName(lower)); err != nil {
			return fmt.Errorf("table: create table %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if exists {
		return storage.Errorf(http.StatusConflict, "TableAlreadyExists", "The table specified already exists.")
	}
	setCommon(w)
	md := responseMetadata(r)
	c := &docContext{md: md, base: baseURL(r, req), account: req.Account}
	w.Header().Set("Location", c.base+"Tables('"+name+"')")
	if preferNoContent(r) {
		w.Header().Set("Preference-Applied", "return-no-content")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if r.Header.Get("Prefer") != "" {
		w.Header().Set("Preference-Applied", "return-content")
	}
	w.Header().Set("Content-Type", md.contentType())
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(appendTable(nil, c, name, true))
	return nil
}

func (s *Service) deleteTable(w http.ResponseWriter, r *http.Request, req *storage.Request, name string) error {
	if err := req.Allow('d', storage.ResContainer); err != nil {
		return err
	}
	if err := checkSASTable(req, name); err != nil {
		return err
	}
	lower := strings.ToLower(name)
	var found bool
	err := s.st.update(func(tx *boltlog.Tx) error {
		found = false
		a := tx.Bucket(accountBucketName(req.Account))
		if a == nil {
			return nil
		}
		tb := a.Bucket(tablesBucket)
		if tb == nil || tb.Get([]byte(lower)) == nil {
			return nil
		}
		found = true
		if err := tb.Delete([]byte(lower)); err != nil {
			return fmt.Errorf("table: forget table %s: %w", name, err)
		}
		if err := forgetPolicies(a, lower); err != nil {
			return err
		}
		if err := a.DeleteBucket(tableBucketName(lower)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return fmt.Errorf("table: delete table %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		// Azure answers this one with ResourceNotFound; the operations on a
		// missing table's entities get TableNotFound.
		return storage.Errorf(http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
	}
	setCommon(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// queryTables lists tables in name order, with $filter on TableName, $top
// and the NextTableName continuation. only names one table (GET
// Tables('t')).
func (s *Service) queryTables(w http.ResponseWriter, r *http.Request, req *storage.Request, only string) error {
	if err := req.Allow('l', storage.ResService); err != nil {
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
	start := ""
	if nt := q.Get("NextTableName"); nt != "" {
		start, err = decodeToken(nt)
		if err != nil {
			return err
		}
	}
	var names []string
	next := ""
	err = s.st.view(func(tx *boltlog.Tx) error {
		a := tx.Bucket(accountBucketName(req.Account))
		if a == nil {
			return nil
		}
		tb := a.Bucket(tablesBucket)
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		for k, v := c.Seek([]byte(start)); k != nil; k, v = c.Next() {
			name := string(v)
			if only != "" && !strings.EqualFold(only, name) {
				continue
			}
			if !match(filter, tableRecord(name)) {
				continue
			}
			if len(names) == top {
				next = string(k)
				break
			}
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if only != "" && len(names) == 0 {
		return tableNotFound()
	}
	setCommon(w)
	md := responseMetadata(r)
	c := &docContext{md: md, base: baseURL(r, req), account: req.Account}
	if next != "" {
		w.Header().Set("x-ms-continuation-NextTableName", encodeToken(next))
	}
	w.Header().Set("Content-Type", md.contentType())
	var b []byte
	if only != "" {
		b = appendTable(nil, c, names[0], true)
	} else {
		b = append(b, '{')
		if md != noMetadata {
			b = append(b, `"odata.metadata":`...)
			b = appendString(b, c.base+"$metadata#Tables")
			b = append(b, ',')
		}
		b = append(b, `"value":[`...)
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTable(b, c, n, false)
		}
		b = append(b, "]}"...)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// maxTop is Azure's page size limit, and the page size without $top.
const maxTop = 1000

func parseTop(s string) (int, error) {
	if s == "" {
		return maxTop, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxTop {
		return 0, storage.Errorf(http.StatusBadRequest, "InvalidInput", "$top must be between 1 and %d.", maxTop)
	}
	return n, nil
}

// Continuation tokens are opaque to clients. A "1!" prefix keeps a token
// for an empty key non-empty, since the SDKs stop paging on an empty one.
func encodeToken(k string) string { return "1!" + base64.RawURLEncoding.EncodeToString([]byte(k)) }

func decodeToken(t string) (string, error) {
	rest, ok := strings.CutPrefix(t, "1!")
	if !ok {
		return "", storage.Errorf(http.StatusBadRequest, "InvalidInput", "The continuation token is not valid.")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", storage.Errorf(http.StatusBadRequest, "InvalidInput", "The continuation token is not valid.")
	}
	return string(b), nil
}
