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
		return s.getServiceProperties(w, req)
	case q.Get("restype") == "service" && q.Get("comp") == "properties" && r.Method == http.MethodPut:
		return s.setServiceProperties(w, r, req)
	case q.Get("restype") == "service" && q.Get("comp") == "stats" && r.Method == http.MethodGet:
		if err := req.Allow('r', storage.ResService); err != nil {
			return err
		}
		return storage.WriteXML(w, http.StatusOK, storage.ServiceStats{Status: "live", LastSyncTime: time.Now().UTC().Format(http.TimeFormat)})
	}
	return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "The account answers only restype=service with comp=properties (GET, PUT) or comp=stats (GET).")
}

func (s *Service) loadServiceProperties(account string) (storage.ServiceProperties, error) {
	var stored []byte
	err := s.st.view(func(tx *boltlog.Tx) error {
		if a := tx.Bucket(accountBucketName(account)); a != nil {
			if sb := a.Bucket(serviceBucket); sb != nil {
				stored = bytes.Clone(sb.Get(propertiesKey))
			}
		}
		return nil
	})
	if err != nil {
		return storage.ServiceProperties{}, err
	}
	props, err := storage.DecodeServiceProperties(stored)
	if err != nil {
		return props, fmt.Errorf("table: service properties of %s: %w", account, err)
	}
	return props, nil
}

func (s *Service) getServiceProperties(w http.ResponseWriter, req *storage.Request) error {
	if err := req.Allow('r', storage.ResService); err != nil {
		return err
	}
	props, err := s.loadServiceProperties(req.Account)
	if err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, props)
}

// setServiceProperties sets the elements the request holds; those it leaves
// out keep their settings. CORS rules take effect at once.
func (s *Service) setServiceProperties(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	if err := req.Allow('w', storage.ResService); err != nil {
		return err
	}
	body, err := storage.ReadBody(r.Body, 64<<10)
	if err != nil {
		return err
	}
	in, err := storage.ParseServiceProperties(body)
	if err != nil {
		return err
	}
	err = s.st.update(func(tx *boltlog.Tx) error {
		a, err := tx.CreateBucketIfNotExists(accountBucketName(req.Account))
		if err != nil {
			return fmt.Errorf("table: create account bucket: %w", err)
		}
		sb, err := a.CreateBucketIfNotExists(serviceBucket)
		if err != nil {
			return fmt.Errorf("table: create service bucket: %w", err)
		}
		v, err := storage.UpdateServiceProperties(sb.Get(propertiesKey), in)
		if err != nil {
			return fmt.Errorf("table: service properties of %s: %w", req.Account, err)
		}
		return sb.Put(propertiesKey, v)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// CORSRules returns the account's CORS rules, for the front end's answers
// to preflight and cross-origin requests.
func (s *Service) CORSRules(account string) []storage.CORSRule {
	props, err := s.loadServiceProperties(account)
	if err != nil {
		s.log.Warn("table: reading CORS rules", "account", account, "err", err)
		return nil
	}
	return props.CORSRules()
}
