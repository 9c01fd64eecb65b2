package table

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage/boltlog"

	"github.com/weftcloud/weft/internal/storage"
)

// A table's stored access policies live in its account's bucket, in
// "acl": lower-cased table name -> JSON []storage.SignedIdentifier. Create
// and Delete Table clear the entry, so a new table starts with none.
var aclBucket = []byte("acl")

// serveACL answers Get and Set Table ACL (PUT/GET /table?comp=acl).
func (s *Service) serveACL(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource) error {
	if res.keyed {
		return badResource(req.Path)
	}
	lower := strings.ToLower(res.table)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := req.AllowACL('r'); err != nil {
			return err
		}
		var policies []storage.SignedIdentifier
		err := s.st.view(func(tx *boltlog.Tx) error {
			var err error
			policies, err = readPolicies(tx, req.Account, lower)
			return err
		})
		if err != nil {
			return err
		}
		storage.WriteSignedIdentifiers(w, r, policies)
		return nil
	case http.MethodPut:
		if err := req.AllowACL('w'); err != nil {
			return err
		}
		policies, err := storage.ReadSignedIdentifiers(r.Body, storage.TablePolicyPermissions)
		if err != nil {
			return err
		}
		data, err := json.Marshal(policies)
		if err != nil {
			return fmt.Errorf("table: encoding policies: %w", err)
		}
		err = s.st.update(func(tx *boltlog.Tx) error {
			if tableBucket(tx, req.Account, lower) == nil {
				return tableNotFound()
			}
			b, err := tx.Bucket(accountBucketName(req.Account)).CreateBucketIfNotExists(aclBucket)
			if err != nil {
				return fmt.Errorf("table: create acl bucket: %w", err)
			}
			return b.Put([]byte(lower), data)
		})
		if err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r)
}

// readPolicies returns a table's stored access policies, or 404
// TableNotFound.
func readPolicies(tx *boltlog.Tx, account, lower string) ([]storage.SignedIdentifier, error) {
	if tableBucket(tx, account, lower) == nil {
		return nil, tableNotFound()
	}
	b := tx.Bucket(accountBucketName(account)).Bucket(aclBucket)
	if b == nil {
		return nil, nil
	}
	raw := b.Get([]byte(lower))
	if raw == nil {
		return nil, nil
	}
	var policies []storage.SignedIdentifier
	if err := json.Unmarshal(raw, &policies); err != nil {
		return nil, fmt.Errorf("table: decoding policies of %s: %w", lower, err)
	}
	return policies, nil
}

// forgetPolicies removes a table's stored access policies, if any.
func forgetPolicies(a *boltlog.Bucket, lower string) error {
	if b := a.Bucket(aclBucket); b != nil {
		if err := b.Delete([]byte(lower)); err != nil {
			return fmt.Errorf("table: forget policies of %s: %w", lower, err)
		}
	}
	return nil
}

var _ storage.AccessPolicies = (*Service)(nil)

// AccessPolicy implements storage.AccessPolicies for tables.
func (s *Service) AccessPolicy(_ context.Context, account, table, id string) (si storage.SignedIdentifier, ok bool, err error) {
	err = s.st.view(func(tx *boltlog.Tx) error {
		lower := strings.ToLower(table)
		if tableBucket(tx, account, lower) == nil {
			return nil // no table, no policy
		}
		policies, err := readPolicies(tx, account, lower)
		if err != nil {
			return err
		}
		si, ok = storage.FindSignedIdentifier(policies, id)
		return nil
	})
	return si, ok, err
}
