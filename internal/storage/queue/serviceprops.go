package queue

import (
	"bytes"
	"net/http"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

var _ storage.CORSRules = (*Service)(nil)

// propertiesStore keeps an account's service properties in bktService
// under the account's name.
type propertiesStore struct{ db *boltlog.DB }

func (ps propertiesStore) StoredProperties(account string) ([]byte, error) {
	var stored []byte
	err := ps.db.View(func(tx *boltlog.Tx) error {
		stored = bytes.Clone(tx.Bucket(bktService).Get([]byte(account)))
		return nil
	})
	return stored, err
}

func (ps propertiesStore) UpdateProperties(account string, change func([]byte) ([]byte, error)) error {
	return ps.db.Write(func(tx *boltlog.Tx) error {
		b := tx.Bucket(bktService)
		v, err := change(b.Get([]byte(account)))
		if err != nil {
			return err
		}
		return b.Put([]byte(account), v)
	})
}

// CORSRules returns the account's CORS rules; they take effect as soon
// as Set Queue Service Properties is answered.
func (s *Service) CORSRules(account string) []storage.CORSRule {
	return storage.AccountCORSRules(propertiesStore{s.db}, account, s.log)
}

func (s *Service) getServiceStats(w http.ResponseWriter, req *storage.Request) error {
	if err := req.Allow('r', storage.ResService); err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, storage.ServiceStats{Status: "live", LastSyncTime: s.now().UTC().Format(http.TimeFormat)})
}
