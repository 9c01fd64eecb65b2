package blob

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Soft delete of blobs. When the account's DeleteRetentionPolicy is
// enabled, Delete Blob moves the blob (and the snapshots it deletes) to
// bktDeleted instead of releasing their bytes: List Blobs shows them with
// include=deleted, Undelete Blob brings them back, and after the policy's
// days the sweep releases them. A soft-deleted record keeps the references
// to its files, so nothing it needs is collected meanwhile.
// https://learn.microsoft.com/rest/api/storageservices/undelete-blob

// deletedRec is when a soft-deleted blob was deleted and when it goes.
type deletedRec struct {
	At    time.Time `json:"at"`
	Purge time.Time `json:"purge"`
}

// deletedKey is the key of a soft-deleted blob in bktDeleted: its blob key
// and a NUL, so it sorts right after a live blob of the same key and
// List Blobs can merge the two buckets in key order.
func deletedKey(key []byte) []byte { return append(bytes.Clone(key), 0) }

// retentionPolicy is the DeleteRetentionPolicy element.
type retentionPolicy struct {
	Enabled bool `xml:"Enabled"`
	Days    int  `xml:"Days"`
}

func parseRetention(raw *rawXML) (retentionPolicy, error) {
	var p retentionPolicy
	if raw == nil {
		return p, nil
	}
	if err := xml.Unmarshal([]byte("<p>"+raw.Inner+"</p>"), &p); err != nil {
		return p, errXML()
	}
	return p, nil
}

// retentionDays is how long the account keeps deleted blobs, 0 when it
// does not.
func (t *txn) retentionDays(account string) (int, error) {
	return t.retention(account, func(p *servicePropsXML) *rawXML { return p.DeleteRetentionPolicy })
}

// retention is how many days the account's retention policy that policy
// picks keeps what is deleted, 0 when none.
func (t *txn) retention(account string, policy func(*servicePropsXML) *rawXML) (int, error) {
	props := defaultServiceProps()
	if _, err := getJSON(t.bucket(bktService), []byte(account), &props); err != nil {
		return 0, err
	}
	p, err := parseRetention(policy(&props))
	if err != nil || !p.Enabled {
		return 0, err
	}
	return p.Days, nil
}

// removeBlob deletes the blob record at key: soft-deleted for days when
// days > 0, else its bytes are released at once.
func (t *txn) removeBlob(key []byte, rec *blobRec, days int, now time.Time) error {
	if days <= 0 {
		if err := t.releaseBlob(rec); err != nil {
			return err
		}
		return t.deleteBlob(key)
	}
	dk := deletedKey(key)
	// A blob deleted again under the same key replaces the older deletion.
	if err := t.purgeDeleted(dk); err != nil {
		return err
	}
	del := *rec
	del.Lease = leaseRec{}
	del.Deleted = &deletedRec{At: now.UTC(), Purge: now.UTC().Add(time.Duration(days) * 24 * time.Hour)}
	if err := putJSON(t.bucket(bktDeleted), dk, &del); err != nil {
		return err
	}
	return t.deleteBlob(key)
}

// purgeDeleted releases the soft-deleted blob at dk, if any.
func (t *txn) purgeDeleted(dk []byte) error {
	var old blobRec
	ok, err := getJSON(t.bucket(bktDeleted), dk, &old)
	if err != nil || !ok {
		return err
	}
	if err := t.releaseBlob(&old); err != nil {
		return err
	}
	return t.bucket(bktDeleted).Delete(dk)
}

// purgeDeletedUnder releases every soft-deleted blob whose key starts with
// prefix (a container's, when the container goes), or, with before set,
// those whose retention ended before it.
func (t *txn) purgeDeletedUnder(prefix []byte, before time.Time) (int, error) {
	var keys [][]byte
	c := t.bucket(bktDeleted).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if !before.IsZero() {
			var rec blobRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return 0, fmt.Errorf("blob: decoding deleted blob: %w", err)
			}
			if rec.Deleted != nil && rec.Deleted.Purge.After(before) {
				continue
			}
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.purgeDeleted(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sweepDeleted releases the soft-deleted blobs whose retention has ended.
func (s *Service) sweepDeleted(now time.Time) error {
	return s.update(func(t *txn) error {
		n, err := t.purgeDeletedUnder(nil, now)
		if n > 0 {
			s.log.Info("blob: released soft-deleted blobs past their retention", "count", n)
		}
		return err
	})
}

// undeleteBlob answers Undelete Blob: the soft-deleted blob and its
// soft-deleted snapshots come back. A snapshot always does; the base blob
// does when no blob has since been written under its name (that one then
// stays deleted until its retention ends, so nothing is lost or
// overwritten). A blob neither live nor soft-deleted is 404 BlobNotFound.
func (s *Service) undeleteBlob(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	err := s.update(func(t *txn) error {
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		base := blobKey(c.req.Account, c.container, c.blob, "")
		live := t.bucket(bktBlobs).Get(base) != nil
		type restore struct {
			dk  []byte
			rec blobRec
		}
		var todo []restore
		cur := t.bucket(bktDeleted).Cursor()
		for k, v := cur.Seek(base); k != nil && hasPrefix(k, base); k, v = cur.Next() {
			var rec blobRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("blob: decoding deleted blob: %w", err)
			}
			todo = append(todo, restore{bytes.Clone(k), rec})
		}
		if len(todo) == 0 && !live {
			return errBlobNotFound()
		}
		for _, r := range todo {
			key := r.dk[:len(r.dk)-1]
			if t.bucket(bktBlobs).Get(key) != nil {
				continue
			}
			r.rec.Deleted = nil
			if err := t.putBlob(key, &r.rec); err != nil {
				return err
			}
			if err := t.bucket(bktDeleted).Delete(r.dk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// deletedProps fills the properties List Blobs shows for a soft-deleted
// blob.
func deletedProps(item *blobItemXML, rec *blobRec, now time.Time) {
	item.Deleted = true
	if rec.Deleted == nil || item.Props == nil {
		return
	}
	item.Props.DeletedTime = rec.Deleted.At.UTC().Format(http.TimeFormat)
	item.Props.RemainingDays = remainingDays(rec.Deleted.Purge, now)
}

// remainingDays is what listings show of a retention ending at purge:
// the days left, counting the one under way.
func remainingDays(purge, now time.Time) int {
	return max(int(purge.Sub(now).Hours()/24)+1, 1)
}
