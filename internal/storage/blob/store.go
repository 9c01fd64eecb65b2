package blob

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// Bucket layout. Keys are built from NUL-separated parts; blob names may not
// contain NUL (validated), so a key prefix of a container or blob is exact and
// keys sort by account, container, blob name, then snapshot ("" sorts first).
var (
	bktContainers = []byte("containers") // account\0container -> containerRec
	bktBlobs      = []byte("blobs")      // account\0container\0name\0snapshot -> blobRec
	bktBlocks     = []byte("blocks")     // account\0container\0name\0\0blockID -> blockRec
	bktPages      = []byte("pages")      // fileID\0start(8 bytes BE) -> end(8 bytes BE)
	bktRefs       = []byte("refs")       // fileID -> reference count (8 bytes BE)
	bktInline     = []byte("inline")     // fileID -> bytes of a small extent
	bktService    = []byte("service")    // account -> serviceProps
	bktDeleted    = []byte("deleted")    // blob key + NUL -> soft-deleted blobRec
)

func containerKey(account, container string) []byte {
	return []byte(account + "\x00" + container)
}

// blobKey is the key of a blob or, with snapshot set, one of its snapshots.
func blobKey(account, container, name, snapshot string) []byte {
	return []byte(account + "\x00" + container + "\x00" + name + "\x00" + snapshot)
}

// blobsPrefix is the common prefix of every blob key in a container.
func blobsPrefix(account, container string) []byte {
	return []byte(account + "\x00" + container + "\x00")
}

// blockPrefix is the prefix of the uncommitted blocks of one blob.
func blockPrefix(account, container, name string) []byte {
	return []byte(account + "\x00" + container + "\x00" + name + "\x00\x00")
}

// leaseRec is a lease as stored; its effective state depends on the clock
// (see lease.state).
type leaseRec struct {
	ID       string    `json:"id,omitempty"`
	State    string    `json:"st,omitempty"` // "", leased, breaking, broken
	Duration int       `json:"d,omitempty"`  // seconds, -1 infinite
	Expires  time.Time `json:"e,omitzero"`   // end of a fixed lease
	BreakEnd time.Time `json:"b,omitzero"`   // end of the break period
}

type containerRec struct {
	Name     string                     `json:"n"`
	Created  time.Time                  `json:"c"`
	Modified time.Time                  `json:"m"`
	ETag     string                     `json:"t"`
	Meta     storage.Metadata           `json:"md,omitempty"`
	Public   string                     `json:"pa,omitempty"` // "", blob, container
	ACL      []storage.SignedIdentifier `json:"acl,omitempty"`
	Lease    leaseRec                   `json:"l"`
}

// extent is a run of bytes of a file (or of an inline value) that is part of
// a blob. Block blobs are ordered lists of extents, one per committed block,
// so committing a block list never copies bytes.
type extent struct {
	ID     string `json:"i,omitempty"` // block ID (base64 as sent), "" for Put Blob data
	File   string `json:"f"`
	Off    int64  `json:"o,omitempty"`
	Len    int64  `json:"n"`
	Inline bool   `json:"in,omitempty"`
}

type copyRec struct {
	ID        string    `json:"id"`
	Source    string    `json:"src"`
	Status    string    `json:"st"`
	Progress  string    `json:"p"`
	Completed time.Time `json:"t"`
	// Rehydrating marks a copy out of Archive: pending until the
	// destination's rehydration completes.
	Rehydrating bool `json:"rh,omitempty"`
	// DestSnapshot is the snapshot an incremental copy left of its
	// destination.
	DestSnapshot string `json:"ds,omitempty"`
}

const (
	blockBlob  = "BlockBlob"
	pageBlob   = "PageBlob"
	appendBlob = "AppendBlob"
)

type blobProps struct {
	ContentType        string `json:"ct,omitempty"`
	ContentEncoding    string `json:"ce,omitempty"`
	ContentLanguage    string `json:"cl,omitempty"`
	ContentDisposition string `json:"cd,omitempty"`
	CacheControl       string `json:"cc,omitempty"`
	ContentMD5         []byte `json:"md5,omitempty"`
}

type blobRec struct {
	// Deleted is set on a soft-deleted blob (bktDeleted).
	Deleted  *deletedRec       `json:"del,omitempty"`
	Name     string            `json:"n"`
	Snapshot string            `json:"s,omitempty"`
	Type     string            `json:"ty"`
	Created  time.Time         `json:"c"`
	Modified time.Time         `json:"m"`
	ETag     string            `json:"t"`
	Size     int64             `json:"sz"`
	Props    blobProps         `json:"p"`
	Meta     storage.Metadata  `json:"md,omitempty"`
	Extents  []extent          `json:"x,omitempty"`  // block and append blobs
	PageFile string            `json:"pf,omitempty"` // page blobs: sparse file of the whole blob
	Seq      int64             `json:"seq,omitempty"`
	Appends  int               `json:"ac,omitempty"` // committed append blocks
	Lease    leaseRec          `json:"l"`
	Copy     *copyRec          `json:"cp,omitempty"`
	Tags     map[string]string `json:"tg,omitempty"`
	Sealed   bool              `json:"sl,omitempty"` // append blobs: Append Blob Seal made it read-only
	// Block blobs' access tier (tiers.go): "" until one is set.
	Tier        string        `json:"tr,omitempty"`
	TierChanged time.Time     `json:"tc,omitzero"`
	Rehydrate   *rehydrateRec `json:"rh,omitempty"`
	// Incremental is set on an incremental copy blob (incremental.go).
	Incremental *incrementalRec `json:"inc,omitempty"`
	// Immutability and LegalHold keep the blob from change (immutability.go).
	Immutability *immutabilityRec `json:"imm,omitempty"`
	LegalHold    bool             `json:"lh,omitempty"`
	// Expires is when the blob goes (expiry.go), zero when it does not.
	Expires time.Time `json:"ex,omitzero"`
}

// blockRec is an uncommitted block.
type blockRec struct {
	extent
	Created time.Time `json:"c"`
	// Volatile: the file was not fsynced when the block was staged; a
	// crash may have torn it (see putBlock).
	Volatile bool `json:"v,omitempty"`
}

// getJSON decodes the value at key into v; it reports whether the key exists.
func getJSON(b *boltlog.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("blob: decoding %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *boltlog.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("blob: encoding %q: %w", key, err)
	}
	return b.Put(key, raw)
}

// txn is one operation's view of a write transaction: it collects the data
// files that lose their last reference so they are removed only after the
// transaction has committed (and no reader can still see them).
type txn struct {
	tx   *boltlog.Tx
	drop []string
}

func (t *txn) bucket(name []byte) *boltlog.Bucket { return t.tx.Bucket(name) }

// ref adds a reference to an extent's file.
func (t *txn) ref(file string) error {
	b := t.bucket(bktRefs)
	var n uint64
	if v := b.Get([]byte(file)); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	return b.Put([]byte(file), binary.BigEndian.AppendUint64(nil, n+1))
}

// unref drops a reference; the last one deletes the bytes.
func (t *txn) unref(file string, inline bool) error {
	b := t.bucket(bktRefs)
	v := b.Get([]byte(file))
	if v == nil {
		return nil
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1 {
		return b.Put([]byte(file), binary.BigEndian.AppendUint64(nil, n-1))
	}
	if err := b.Delete([]byte(file)); err != nil {
		return err
	}
	if inline {
		return t.bucket(bktInline).Delete([]byte(file))
	}
	t.drop = append(t.drop, file)
	return nil
}

// releaseBlob drops every reference a blob record holds on stored bytes.
func (t *txn) releaseBlob(rec *blobRec) error {
	for _, e := range rec.Extents {
		if err := t.unref(e.File, e.Inline); err != nil {
			return err
		}
	}
	if rec.PageFile != "" {
		if err := t.deleteRanges(rec.PageFile); err != nil {
			return err
		}
		if err := t.unref(rec.PageFile, false); err != nil {
			return err
		}
	}
	return nil
}

// holdBlob adds the references a (copied) blob record holds.
func (t *txn) holdBlob(rec *blobRec) error {
	for _, e := range rec.Extents {
		if err := t.ref(e.File); err != nil {
			return err
		}
	}
	if rec.PageFile != "" {
		return t.ref(rec.PageFile)
	}
	return nil
}

// storeExtent records a freshly written extent with one reference; data is
// non-nil for inline extents.
func (t *txn) storeExtent(e extent, data []byte) error {
	if e.Inline {
		if err := t.bucket(bktInline).Put([]byte(e.File), data); err != nil {
			return err
		}
	}
	return t.ref(e.File)
}

// existingBlob loads the base blob a call names, with its key: the
// container and the blob must both exist (404 ContainerNotFound or
// BlobNotFound otherwise).
func (t *txn) existingBlob(c *call) ([]byte, *blobRec, error) {
	if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
		return nil, nil, errContainerNotFound()
	}
	key := blobKey(c.req.Account, c.container, c.blob, "")
	rec, err := t.getBlob(key)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, errBlobNotFound()
	}
	return key, rec, nil
}

// getBlob loads the blob or snapshot at key, nil when there is none. A
// base blob past its expiry time (by the wall clock) is none: a write
// transaction releases it there and then.
func (t *txn) getBlob(key []byte) (*blobRec, error) {
	var rec blobRec
	ok, err := getJSON(t.bucket(bktBlobs), key, &rec)
	if err != nil || !ok {
		return nil, err
	}
	if rec.Snapshot == "" && rec.expired(time.Now()) {
		if t.tx.Bolt().Writable() {
			return nil, t.dropExpired(key, &rec)
		}
		return nil, nil
	}
	return &rec, nil
}

// putBlob stores rec at key and keeps the tag index in step.
func (t *txn) putBlob(key []byte, rec *blobRec) error {
	if err := t.indexTags(key, rec.Tags); err != nil {
		return err
	}
	return putJSON(t.bucket(bktBlobs), key, rec)
}

func (t *txn) getContainer(account, name string) (*containerRec, error) {
	var rec containerRec
	ok, err := getJSON(t.bucket(bktContainers), containerKey(account, name), &rec)
	if err != nil || !ok {
		return nil, err
	}
	return &rec, nil
}

// dropBlocks forgets every uncommitted block of a blob.
func (t *txn) dropBlocks(account, container, name string) error {
	prefix := blockPrefix(account, container, name)
	c := t.bucket(bktBlocks).Cursor()
	var keys [][]byte
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		var b blockRec
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("blob: decoding block: %w", err)
		}
		if err := t.unref(b.File, b.Inline); err != nil {
			return err
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := t.bucket(bktBlocks).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

// update runs fn as one durable write of the metadata log (boltlog, which
// shares one fsync among the writes that arrive together); when fn fails,
// nothing it wrote is kept. Data files that lost their last reference are
// removed once the write is durable.
func (s *Service) update(fn func(t *txn) error) error {
	var drop []string
	err := s.db.Write(func(tx *boltlog.Tx) error {
		t := &txn{tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		drop = t.drop
		return nil
	})
	if errors.Is(err, boltlog.ErrClosed) {
		return errServiceClosed
	}
	if err == nil && len(drop) > 0 {
		s.files.retire(drop)
	}
	return err
}

var errServiceClosed = errors.New("blob: service closed")

// view runs fn against a consistent view of the metadata.
func (s *Service) view(fn func(tx *boltlog.Tx) error) error {
	return s.db.View(fn)
}
