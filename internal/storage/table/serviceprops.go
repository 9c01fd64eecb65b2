package table

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

var _ storage.CORSRules = (*Service)(nil)

// An account's service properties live in its bucket, in "service" under
// "properties", as JSON storage.ServiceProperties.
var (
	serviceBucket = []byte("service")
	propertiesKey = []byte("properties")
)

// serveService answers the operations on the account: Get and Set Table
// Service Properties and Get Table Service Stats.
func (s *Service) serveService(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	q := r.URL.Query()
	switch {
	case q.Get("restype") == "service" && q.Get("comp") == "properties" && r.Method == http.MethodGet:
		return storage.GetServiceProperties(w, req, propertiesStore{s.st})
	case q.Get("restype") == "service" && q.Get("comp") == "properties" && r.Method == http.MethodPut:
		return storage.SetServiceProperties(w, r, req, propertiesStore{s.st})
	case q.Get("restype") == "service" && q.Get("comp") == "stats" && r.Method == http.MethodGet:
		if err := req.Allow('r', storage.ResService); err != nil {
			return err
		}
		return storage.WriteXML(w, http.StatusOK, storage.ServiceStats{Status: "live", LastSyncTime: time.Now().UTC().Format(http.TimeFormat)})
	}
	return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "The account answers only restype=service with comp=properties (GET, PUT) or comp=stats (GET).")
}

// propertiesStore keeps an account's service properties in its bucket.
type propertiesStore struct{ st *store }

func (ps propertiesStore) StoredProperties(account string) ([]byte, error) {
	var stored []byte
	err := ps.st.view(func(tx *boltlog.Tx) error {
		if a := tx.Bucket(accountBucketName(account)); a != nil {
			if sb := a.Bucket(serviceBucket); sb != nil {
				stored = bytes.Clone(sb.Get(propertiesKey))
			}
		}
		return nil
	})
	return stored, err
}

func (ps propertiesStore) UpdateProperties(account string, change func([]byte) ([]byte, error)) error {
	return ps.st.update(func(tx *boltlog.Tx) error {
		a, err := tx.CreateBucketIfNotExists(accountBucketName(account))
		if err != nil {
			return fmt.Errorf("table: create account bucket: %w", err)
		}
		sb, err := a.CreateBucketIfNotExists(serviceBucket)
		if err != nil {
			return fmt.Errorf("table: create service bucket: %w", err)
		}
		v, err := change(sb.Get(propertiesKey))
		if err != nil {
			return err
		}
		return sb.Put(propertiesKey, v)
	})
}

// CORSRules returns the account's CORS rules; they take effect as soon
// as Set Table Service Properties is answered.
func (s *Service) CORSRules(account string) []storage.CORSRule {
	return storage.AccountCORSRules(propertiesStore{s.st}, account, s.log)
}
