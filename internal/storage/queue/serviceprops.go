package queue

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

var _ storage.CORSRules = (*Service)(nil)

// An account's service properties are kept in bktService under the
// account's name, in the form storage.UpdateServiceProperties gives.

func (s *Service) loadServiceProperties(account string) (storage.ServiceProperties, error) {
	var stored []byte
	err := s.db.View(func(tx *boltlog.Tx) error {
		stored = bytes.Clone(tx.Bucket(bktService).Get([]byte(account)))
		return nil
	})
	if err != nil {
		return storage.ServiceProperties{}, err
	}
	props, err := storage.DecodeServiceProperties(stored)
	if err != nil {
		return props, fmt.Errorf("queue: service properties of %s: %w", account, err)
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

// setServiceProperties sets the elements the request holds; those it
// leaves out keep their settings. CORS rules take effect at once.
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
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b := tx.Bucket(bktService)
		v, err := storage.UpdateServiceProperties(b.Get([]byte(req.Account)), in)
		if err != nil {
			return err
		}
		return b.Put([]byte(req.Account), v)
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusAccepted)
}

// CORSRules returns the account's CORS rules, for the front end's answers
// to preflight and cross-origin requests.
func (s *Service) CORSRules(account string) []storage.CORSRule {
	props, err := s.loadServiceProperties(account)
	if err != nil {
		s.log.Warn("queue: reading CORS rules", "account", account, "err", err)
		return nil
	}
	return props.CORSRules()
}

func (s *Service) getServiceStats(w http.ResponseWriter, req *storage.Request) error {
	if err := req.Allow('r', storage.ResService); err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, storage.ServiceStats{Status: "live", LastSyncTime: s.now().UTC().Format(http.TimeFormat)})
}
