package blob

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// AccountBytes returns the bytes each account's blobs hold: the sizes of
// its blobs and their snapshots. Uncommitted
// blocks are not counted; they are dropped after a week unless committed.
// A page blob counts its whole size, where Azure bills the pages written.
// It reads every blob's record, so callers run it now and then, not per
// request.
func (s *Service) AccountBytes() (map[string]int64, error) {
	out := map[string]int64{}
	err := s.view(func(tx *boltlog.Tx) error {
		cur := tx.Bucket(bktBlobs).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			account, _, ok := bytes.Cut(k, []byte{0})
			if !ok {
				continue
			}
			var rec struct {
				Size int64 `json:"sz"`
			}
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("blob: account bytes: record %q: %w", k, err)
			}
			out[string(account)] += rec.Size
		}
		return nil
	})
	return out, err
}
