package blob

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Set Blob Expiry. A blob given an expiry time is gone once that time
// has passed: reads, listings and Find Blobs by Tags no longer see it
// (404 BlobNotFound), the first write that meets it releases it, and the
// expiry sweep (gcLoop, every minute) deletes it in the background,
// permanently, whatever the account's delete retention policy. Its
// snapshots stay.
//
// Azure allows Set Blob Expiry only on accounts with a hierarchical
// namespace and answers 400 elsewhere; Weft has no hierarchical
// namespace and allows it on every blob. An overwrite (Put Blob, Put
// Block List, a copy) makes a new blob without an expiry time.
// https://learn.microsoft.com/rest/api/storageservices/set-blob-expiry

// bktExpiry indexes the blobs that have an expiry time, so the sweep
// reads only those due: expiry time (8 bytes, big-endian Unix
// nanoseconds) + blob key -> nothing. An entry whose blob has since gone
// or changed its time is stale; the sweep drops it.
var bktExpiry = []byte("expiry")

func expiryKey(at time.Time, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())), key...)
}

// expired reports whether rec has an expiry time that has passed.
func (r *blobRec) expired(now time.Time) bool {
	return !r.Expires.IsZero() && !now.Before(r.Expires)
}

// expiredRaw reports whether the stored blob record raw has an expiry
// time that has passed, decoding only that field, and only when the
// record has one.
func expiredRaw(raw []byte, now time.Time) bool {
	if !bytes.Contains(raw, []byte(`"ex":`)) {
		return false
	}
	var rec struct {
		Expires time.Time `json:"ex"`
	}
	if json.Unmarshal(raw, &rec) != nil {
		return false
	}
	return !rec.Expires.IsZero() && !now.Before(rec.Expires)
}

// parseExpiry reads x-ms-expiry-option and x-ms-expiry-time (options are
// case-insensitive, as documented) into the blob's new expiry time, zero
// for NeverExpire. The relative options take a number of milliseconds,
// Absolute an RFC 1123 time; NeverExpire takes no time.
func parseExpiry(h http.Header, created, now time.Time) (time.Time, error) {
	opt := h.Get("x-ms-expiry-option")
	if opt == "" {
		return time.Time{}, errMissingHeader("x-ms-expiry-option")
	}
	_, timed := h["X-Ms-Expiry-Time"]
	v := h.Get("x-ms-expiry-time")
	relative := func(from time.Time) (time.Time, error) {
		if !timed {
			return time.Time{}, errMissingHeader("x-ms-expiry-time")
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > int64(100*365*24*time.Hour/time.Millisecond) {
			return time.Time{}, errHeader("x-ms-expiry-time")
		}
		return from.Add(time.Duration(ms) * time.Millisecond).UTC(), nil
	}
	switch strings.ToLower(opt) {
	case "relativetocreation":
		return relative(created)
	case "relativetonow":
		return relative(now)
	case "absolute":
		if !timed {
			return time.Time{}, errMissingHeader("x-ms-expiry-time")
		}
		at, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, errHeader("x-ms-expiry-time")
		}
		return at.UTC(), nil
	case "neverexpire":
		if timed {
			return time.Time{}, errHeader("x-ms-expiry-time")
		}
		return time.Time{}, nil
	}
	return time.Time{}, errHeader("x-ms-expiry-option")
}

// setExpiry answers Set Blob Expiry: 200 with the blob's ETag and
// Last-Modified, which it does not change (the expiry time is no property
// of the content). A snapshot is 400; a lease in force needs its ID.
func (s *Service) setExpiry(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	if _, err := parseExpiry(c.r.Header, time.Time{}, time.Time{}); err != nil {
		// Checked before the blob is looked at, so a malformed request is
		// 400 whatever the blob's state.
		return err
	}
	now := s.now().UTC()
	rec, err := s.modifyBlob(c, func(t *txn, rec *blobRec) (bool, error) {
		at, err := parseExpiry(c.r.Header, rec.Created, now)
		if err != nil {
			return false, err
		}
		key := blobKey(c.req.Account, c.container, c.blob, "")
		idx := t.bucket(bktExpiry)
		if !rec.Expires.IsZero() {
			if err := idx.Delete(expiryKey(rec.Expires, key)); err != nil {
				return false, err
			}
		}
		rec.Expires = at
		if !at.IsZero() {
			if err := idx.Put(expiryKey(at, key), nil); err != nil {
				return false, err
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// dropExpired releases the expired base blob rec at key in a write: its
// bytes, its uncommitted blocks and its tags go.
func (t *txn) dropExpired(key []byte, rec *blobRec) error {
	if err := t.releaseBlob(rec); err != nil {
		return err
	}
	parts := strings.SplitN(string(key), "\x00", 4)
	if len(parts) == 4 {
		if err := t.dropBlocks(parts[0], parts[1], parts[2]); err != nil {
			return err
		}
	}
	if err := t.bucket(bktExpiry).Delete(expiryKey(rec.Expires, key)); err != nil {
		return err
	}
	return t.deleteBlob(key)
}

// sweepExpired deletes the blobs whose expiry time is before now, in
// batches of at most 1,000 per write.
func (s *Service) sweepExpired(now time.Time) error {
	for {
		n, more := 0, false
		err := s.update(func(t *txn) error {
			cur := t.bucket(bktExpiry).Cursor()
			limit := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
			var due [][]byte
			for k, _ := cur.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = cur.Next() {
				if len(due) == 1000 {
					more = true
					break
				}
				due = append(due, bytes.Clone(k))
			}
			for _, k := range due {
				key := k[8:]
				var rec blobRec
				ok, err := getJSON(t.bucket(bktBlobs), key, &rec)
				if err != nil {
					return err
				}
				if ok && rec.expired(now) && bytes.Equal(expiryKey(rec.Expires, key), k) {
					if err := t.dropExpired(key, &rec); err != nil {
						return err
					}
					n++
					continue
				}
				if err := t.bucket(bktExpiry).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if n > 0 {
			s.log.Info("blob: deleted expired blobs", "count", n)
		}
		if err != nil || !more {
			return err
		}
	}
}
