package blob

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// modifyBlob applies change to the existing base blob c addresses after the
// checks of a write (conditions, lease), then stores it with a new ETag when
// change reports the blob's content or properties changed. It returns the
// stored record.
func (s *Service) modifyBlob(c *call, change func(t *txn, rec *blobRec) (bool, error)) (*blobRec, error) {
	if c.query("snapshot") != "" {
		return nil, storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "This operation is not permitted on a snapshot.")
	}
	now := s.now().UTC()
	var out blobRec
	err := s.update(func(t *txn) error {
		key, rec, err := t.existingBlob(c)
		if err != nil {
			return err
		}
		if err := checkBlobConditions(c, rec, false); err != nil {
			return err
		}
		if err := checkWriteLease(&rec.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
			return err
		}
		changed, err := change(t, rec)
		if err != nil {
			return err
		}
		if changed {
			rec.Modified, rec.ETag = now, s.etag(now)
		}
		out = *rec
		return t.putBlob(key, rec)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// setBlobProps answers Set Blob Properties. The content headers not sent
// are cleared, as in Azure; resizing and sequence number actions apply to
// page blobs only.
func (s *Service) setBlobProps(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	props, err := propsFromHeaders(c.r.Header, false)
	if err != nil {
		return err
	}
	if c.header("x-ms-blob-content-type") == "" {
		props.ContentType = ""
	}
	var resize int64 = -1
	if v := c.header("x-ms-blob-content-length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n%512 != 0 {
			return errHeader("x-ms-blob-content-length")
		}
		resize = n
	}
	seqAction := c.header("x-ms-sequence-number-action")
	var seq int64
	switch seqAction {
	case "":
	case "max", "update":
		n, err := strconv.ParseInt(c.header("x-ms-blob-sequence-number"), 10, 64)
		if err != nil || n < 0 {
			return errHeader("x-ms-blob-sequence-number")
		}
		seq = n
	case "increment":
		if c.header("x-ms-blob-sequence-number") != "" {
			return errHeader("x-ms-blob-sequence-number")
		}
	default:
		return errHeader("x-ms-sequence-number-action")
	}
	if resize >= 0 || seqAction != "" {
		return s.setPageBlobProps(c, props, resize, seqAction, seq)
	}
	now := s.now()
	rec, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		if err := checkOnline(rec, now); err != nil {
			return false, err
		}
		if rec.Incremental != nil {
			return false, errIncremental()
		}
		if err := checkMutable(rec, now); err != nil {
			return false, err
		}
		rec.Props = props
		return true, nil
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	if rec.Type == pageBlob {
		c.w.Header().Set("x-ms-blob-sequence-number", strconv.FormatInt(rec.Seq, 10))
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// setBlobMetadata answers Set Blob Metadata, which replaces all metadata.
func (s *Service) setBlobMetadata(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	md, err := storage.ReadMetadata(c.r.Header)
	if err != nil {
		return err
	}
	now := s.now()
	rec, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		if err := checkOnline(rec, now); err != nil {
			return false, err
		}
		if rec.Incremental != nil {
			return false, errIncremental()
		}
		if err := checkMutable(rec, now); err != nil {
			return false, err
		}
		rec.Meta = md
		return true, nil
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.Header().Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// blobLease answers Lease Blob. A lease does not change the blob's ETag.
func (s *Service) blobLease(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	var res leaseResult
	now := s.now().UTC()
	if c.query("snapshot") != "" {
		return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "This operation is not permitted on a snapshot.")
	}
	var out blobRec
	err := s.update(func(t *txn) error {
		key, rec, err := t.existingBlob(c)
		if err != nil {
			return err
		}
		if err := checkBlobConditions(c, rec, false); err != nil {
			return err
		}
		res, err = leaseAction(&rec.Lease, c.r.Header, now)
		if err != nil {
			return err
		}
		out = *rec
		return t.putBlob(key, rec)
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), out.ETag, out.Modified)
	writeLeaseResult(c.w, res)
	return nil
}

// deleteBlob answers Delete Blob: one snapshot (?snapshot=), the blob with
// its snapshots (include), only the snapshots (only); a blob with snapshots
// and no x-ms-delete-snapshots is 409 SnapshotsPresent.
func (s *Service) deleteBlob(c *call) error {
	if err := s.allow(c, "d", storage.ResObject, ""); err != nil {
		return err
	}
	snapshot := c.query("snapshot")
	mode := c.header("x-ms-delete-snapshots")
	switch mode {
	case "", "include", "only":
	default:
		return errHeader("x-ms-delete-snapshots")
	}
	if snapshot != "" && mode != "" {
		return errHeader("x-ms-delete-snapshots")
	}
	now := s.now()
	soft := false // kept by the account's delete retention policy
	err := s.update(func(t *txn) error {
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		days, err := t.retentionDays(c.req.Account)
		if err != nil {
			return err
		}
		soft = days > 0
		if snapshot != "" {
			key := blobKey(c.req.Account, c.container, c.blob, snapshot)
			rec, err := t.getBlob(key)
			if err != nil {
				return err
			}
			if rec == nil {
				return errBlobNotFound()
			}
			if err := checkBlobConditions(c, rec, false); err != nil {
				return err
			}
			return t.removeBlob(key, rec, days, now)
		}
		base := blobKey(c.req.Account, c.container, c.blob, "")
		rec, err := t.getBlob(base)
		if err != nil {
			return err
		}
		if rec == nil {
			return errBlobNotFound()
		}
		if err := checkBlobConditions(c, rec, false); err != nil {
			return err
		}
		if err := checkWriteLease(&rec.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
			return err
		}
		if err := checkMutable(rec, now); err != nil {
			return err
		}
		var snaps [][]byte
		var snapRecs []blobRec
		cur := t.bucket(bktBlobs).Cursor()
		for k, v := cur.Seek(base); k != nil && hasPrefix(k, base); k, v = cur.Next() {
			if len(k) == len(base) {
				continue
			}
			if mode == "" {
				return storage.Errorf(http.StatusConflict, "SnapshotsPresent", "This operation is not permitted because the blob has snapshots.")
			}
			var snap blobRec
			if err := json.Unmarshal(v, &snap); err != nil {
				return err
			}
			snaps, snapRecs = append(snaps, append([]byte(nil), k...)), append(snapRecs, snap)
		}
		for i, k := range snaps {
			if err := t.removeBlob(k, &snapRecs[i], days, now); err != nil {
				return err
			}
		}
		if mode == "only" {
			return nil
		}
		if err := t.dropBlocks(c.req.Account, c.container, c.blob); err != nil {
			return err
		}
		return t.removeBlob(base, rec, days, now)
	})
	if err != nil {
		return err
	}
	c.w.Header().Set("x-ms-delete-type-permanent", strconv.FormatBool(!soft))
	c.w.WriteHeader(http.StatusAccepted)
	return nil
}

// snapshotTime formats a snapshot identifier as Azure does.
func snapshotTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// snapshotBlob takes a read-only copy of a blob. Block and append blob
// snapshots share the base blob's immutable extents (an append blob only
// ever writes past a snapshot's length). Page blob snapshots copy the pages
// written so far into a new sparse file: simpler than copy-on-write and
// its cost is bounded by the disk's used size, not its nominal size.
func (s *Service) snapshotBlob(c *call) error {
	if err := s.allow(c, "cw", storage.ResObject, ""); err != nil {
		return err
	}
	md, err := storage.ReadMetadata(c.r.Header)
	if err != nil {
		return err
	}
	// Pin the files found in the metadata until the data is written.
	exit := s.files.enter()
	defer exit()
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	// Page data is copied before the commit, under the blob's lock so no
	// page write can interleave.
	var pageCopy string
	defer func() {
		if pageCopy != "" {
			s.discard(&ingested{ext: extent{File: pageCopy}})
		}
	}()
	rec, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if rec.Type == pageBlob {
		if pageCopy, err = s.copyPageFile(rec); err != nil {
			return err
		}
	}
	now := s.now().UTC()
	var snap blobRec
	var id string
	err = s.update(func(t *txn) error {
		base := blobKey(c.req.Account, c.container, c.blob, "")
		rec, err := t.getBlob(base)
		if err != nil {
			return err
		}
		if rec == nil {
			return errBlobNotFound()
		}
		if err := checkBlobConditions(c, rec, false); err != nil {
			return err
		}
		if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
			return err
		}
		if err := checkOnline(rec, now); err != nil {
			return err
		}
		ts := now
		for {
			id = snapshotTime(ts)
			if t.bucket(bktBlobs).Get(blobKey(c.req.Account, c.container, c.blob, id)) == nil {
				break
			}
			ts = ts.Add(100 * time.Nanosecond)
		}
		snap = *rec
		snap.Snapshot, snap.Lease = id, leaseRec{}
		// A snapshot is a blob of its own: the base's policy, hold and
		// expiry time stay with the base.
		snap.Immutability, snap.LegalHold, snap.Expires = nil, false, time.Time{}
		if md != nil {
			snap.Meta = md
		}
		if rec.Type == pageBlob {
			snap.PageFile = pageCopy
			if err := t.copyRanges(rec.PageFile, pageCopy); err != nil {
				return err
			}
		}
		if err := t.holdBlob(&snap); err != nil {
			return err
		}
		return t.putBlob(blobKey(c.req.Account, c.container, c.blob, id), &snap)
	})
	if err != nil {
		return err
	}
	pageCopy = ""
	writeTags(c.w.Header(), snap.ETag, snap.Modified)
	c.w.Header().Set("x-ms-snapshot", id)
	c.w.Header().Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusCreated)
	return nil
}
