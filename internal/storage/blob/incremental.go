package blob

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Incremental Copy Blob copies a snapshot of a page blob to a destination
// page blob that is then bound to that source: only later snapshots of the
// same blob may be copied to it, nothing else may write it, and each copy
// leaves a snapshot of the destination (x-ms-copy-destination-snapshot),
// the backups the operation exists for. Azure transfers only the pages that
// changed; here the snapshot's sparse file is copied whole (its written
// pages only), which is what the transfer amounts to on one disk.
// https://learn.microsoft.com/rest/api/storageservices/incremental-copy-blob

// incrementalRec binds an incremental copy blob to its source.
type incrementalRec struct {
	Source   string `json:"src"`  // /account/container/blob of the source
	Snapshot string `json:"snap"` // the last snapshot copied
}

// errIncremental refuses a write to an incremental copy blob.
func errIncremental() error {
	return storage.Errorf(http.StatusConflict, "OperationNotAllowedOnIncrementalCopyBlob", "The specified operation is not allowed on an incremental copy blob.")
}

// incrementalCopy answers Incremental Copy Blob. Like Copy Blob it
// completes before answering (202, x-ms-copy-status: success).
func (s *Service) incrementalCopy(c *call) error {
	if err := s.allow(c, "cw", storage.ResObject, ""); err != nil {
		return err
	}
	srcContainer, srcName, srcSnap, err := copySource(c)
	if err != nil {
		return err
	}
	if srcSnap == "" {
		return storage.Errorf(http.StatusConflict, "IncrementalCopySourceMustBeSnapshot", "The source for incremental copy request must be a snapshot.")
	}
	srcCall := &call{r: c.r, req: c.req, q: url.Values{"snapshot": {srcSnap}}, container: srcContainer, blob: srcName}
	if err := s.allowCopySource(c, srcCall); err != nil {
		return err
	}
	exit := s.files.enter()
	defer exit()
	src, _, err := s.loadBlob(srcCall)
	if err != nil {
		if se, ok := err.(*storage.Error); ok && se.Status == http.StatusNotFound {
			return storage.Errorf(http.StatusNotFound, "CannotVerifyCopySource", "The specified blob does not exist.")
		}
		return err
	}
	if src.Type != pageBlob {
		return errInvalidBlobType()
	}
	source := "/" + c.req.Account + "/" + srcContainer + "/" + srcName
	// A snapshot's file is never written, so it is copied without a lock:
	// once for the destination, once for the destination's snapshot.
	var files []string
	defer func() {
		for _, f := range files {
			s.discard(&ingested{ext: extent{File: f}})
		}
	}()
	for range 2 {
		f, err := s.copyPageFile(src)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	dstLock := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	dstLock.Lock()
	defer dstLock.Unlock()
	now := s.now().UTC()
	copyID := newUUID()
	rec := *src
	rec.Name, rec.Snapshot, rec.Lease, rec.Tags, rec.Expires = c.blob, "", leaseRec{}, nil, time.Time{}
	rec.Created, rec.Modified, rec.ETag = now, now, s.etag(now)
	rec.PageFile = files[0]
	rec.Incremental = &incrementalRec{Source: source, Snapshot: srcSnap}
	rec.Copy = &copyRec{ID: copyID, Source: c.header("x-ms-copy-source"), Status: "success",
		Progress: fmt.Sprintf("%d/%d", src.Size, src.Size), Completed: now}
	err = s.update(func(t *txn) error {
		err := s.replaceBlob(t, c, &rec, func(old *blobRec) error {
			if old != nil {
				if old.Incremental == nil || old.Incremental.Source != source {
					return storage.Errorf(http.StatusConflict, "IncrementalCopyBlobMismatch", "The specified source blob is different than the copy source of the existing incremental copy blob.")
				}
				if snapshotBefore(srcSnap, old.Incremental.Snapshot) {
					return storage.Errorf(http.StatusConflict, "IncrementalCopyOfEarlierSnapshotNotAllowed", "The specified snapshot is earlier than the last snapshot copied into the incremental copy blob.")
				}
			}
			if err := t.copyRanges(src.PageFile, rec.PageFile); err != nil {
				return err
			}
			return t.holdBlob(&rec)
		})
		if err != nil {
			return err
		}
		// The destination's snapshot of this copy.
		ts := now
		for t.bucket(bktBlobs).Get(blobKey(c.req.Account, c.container, c.blob, snapshotTime(ts))) != nil {
			ts = ts.Add(100 * time.Nanosecond)
		}
		snap := rec
		snap.Snapshot, snap.PageFile = snapshotTime(ts), files[1]
		rec.Copy.DestSnapshot = snap.Snapshot
		copied := *rec.Copy
		snap.Copy = &copied
		if err := t.copyRanges(src.PageFile, snap.PageFile); err != nil {
			return err
		}
		if err := t.holdBlob(&snap); err != nil {
			return err
		}
		if err := t.putBlob(blobKey(c.req.Account, c.container, c.blob, snap.Snapshot), &snap); err != nil {
			return err
		}
		return t.putBlob(blobKey(c.req.Account, c.container, c.blob, ""), &rec)
	})
	if err != nil {
		return err
	}
	files = nil
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	h.Set("x-ms-copy-id", copyID)
	h.Set("x-ms-copy-status", "success")
	c.w.WriteHeader(http.StatusAccepted)
	return nil
}

// snapshotBefore reports whether snapshot a was taken before b; both are
// Azure snapshot times, whose text sorts as their time.
func snapshotBefore(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	if errA != nil || errB != nil {
		return a < b
	}
	return ta.Before(tb)
}
