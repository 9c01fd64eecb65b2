package blob

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

const (
	maxPutBlob    = 5000 << 20 // Put Blob body, as in Azure
	maxBlock      = 4000 << 20 // Put Block body
	maxBlocks     = 50000      // committed blocks per blob
	maxBlockIDLen = 64         // decoded bytes
)

// blobHeaders reads what the headers of a request that writes a whole blob
// give it: its properties (propsFromHeaders), metadata and index tags.
func blobHeaders(h http.Header, plain bool) (blobProps, storage.Metadata, map[string]string, error) {
	props, err := propsFromHeaders(h, plain)
	if err != nil {
		return props, nil, nil, err
	}
	md, err := storage.ReadMetadata(h)
	if err != nil {
		return props, nil, nil, err
	}
	tags, err := tagsFromHeader(h)
	return props, md, tags, err
}

// propsFromHeaders reads the x-ms-blob-content-* headers (and, for Put
// Blob, the plain Content-* ones as a fallback).
func propsFromHeaders(h http.Header, plain bool) (blobProps, error) {
	get := func(xms, std string) string {
		if v := h.Get(xms); v != "" || !plain {
			return v
		}
		return h.Get(std)
	}
	p := blobProps{
		ContentType:        get("x-ms-blob-content-type", "Content-Type"),
		ContentEncoding:    get("x-ms-blob-content-encoding", "Content-Encoding"),
		ContentLanguage:    get("x-ms-blob-content-language", "Content-Language"),
		ContentDisposition: h.Get("x-ms-blob-content-disposition"),
		CacheControl:       get("x-ms-blob-cache-control", "Cache-Control"),
	}
	if p.ContentType == "" {
		p.ContentType = "application/octet-stream"
	}
	if v := h.Get("x-ms-blob-content-md5"); v != "" {
		// Azure keeps the value it is given, of any length: it is the
		// client's property, not a check of the content.
		sum, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return p, errHeader("x-ms-blob-content-md5")
		}
		p.ContentMD5 = sum
	}
	return p, nil
}

// replaceBlob writes rec as the new base blob at c's address after the
// checks every overwrite makes: container exists, conditions hold, the lease
// (kept across the overwrite) admits the writer. It releases the old bytes
// and uncommitted blocks. prepare may adjust rec with the old blob in view.
func (s *Service) replaceBlob(t *txn, c *call, rec *blobRec, prepare func(old *blobRec) error) error {
	if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
		return errContainerNotFound()
	}
	key := blobKey(c.req.Account, c.container, c.blob, "")
	old, err := t.getBlob(key)
	if err != nil {
		return err
	}
	if err := checkBlobConditions(c, old, false); err != nil {
		return err
	}
	if old != nil && old.Incremental != nil && rec.Incremental == nil {
		return errIncremental()
	}
	now := rec.Modified
	if err := checkMutable(old, now); err != nil {
		return err
	}
	if err := protectOnWrite(c, rec, now); err != nil {
		return err
	}
	// A batch may run this more than once: start from the request's record.
	rec.Lease, rec.Created = leaseRec{}, now
	if old != nil {
		if err := checkWriteLease(&old.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
			return err
		}
		if old.Lease.active(now) {
			rec.Lease = old.Lease
		}
		rec.Created = old.Created
	} else if c.header("x-ms-lease-id") != "" {
		return storage.Errorf(http.StatusPreconditionFailed, "LeaseNotPresentWithBlobOperation", "There is currently no lease on the blob.")
	}
	if prepare != nil {
		if err := prepare(old); err != nil {
			return err
		}
	}
	if old != nil {
		if err := t.releaseBlob(old); err != nil {
			return err
		}
	}
	if err := t.dropBlocks(c.req.Account, c.container, c.blob); err != nil {
		return err
	}
	return t.putBlob(key, rec)
}

// putBlob answers Put Blob: a whole block blob in one request, or the
// creation of an empty page or append blob.
func (s *Service) putBlob(c *call) error {
	if err := s.allow(c, "cw", storage.ResObject, ""); err != nil {
		return err
	}
	switch c.header("x-ms-blob-type") {
	case blockBlob:
	case pageBlob:
		return s.createPageBlob(c)
	case appendBlob:
		return s.createAppendBlob(c)
	case "":
		return errMissingHeader("x-ms-blob-type")
	default:
		return errHeader("x-ms-blob-type")
	}
	props, md, tags, err := blobHeaders(c.r.Header, true)
	if err != nil {
		return err
	}
	tier, err := parseTier(c.r.Header)
	if err != nil {
		return err
	}
	in, err := s.ingest(c, maxPutBlob, true, true)
	if err != nil {
		return err
	}
	if props.ContentMD5 == nil {
		props.ContentMD5 = in.md5
	}
	now := s.now().UTC()
	rec := &blobRec{Name: c.blob, Type: blockBlob, Created: now, Modified: now, ETag: s.etag(now),
		Size: in.ext.Len, Props: props, Meta: md, Tags: tags}
	if tier != "" {
		rec.Tier, rec.TierChanged = tier, now
	}
	if in.ext.Len > 0 {
		rec.Extents = []extent{in.ext}
	} else {
		s.discard(in)
	}
	err = s.update(func(t *txn) error {
		return s.replaceBlob(t, c, rec, func(*blobRec) error {
			if in.ext.Len == 0 {
				return nil
			}
			return t.storeExtent(in.ext, in.data)
		})
	})
	if err != nil {
		s.discard(in)
		return err
	}
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	writeChecksums(h, in)
	h.Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

func decodeBlockID(id string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 || len(raw) > maxBlockIDLen {
		return nil, storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "The specified block ID is invalid.")
	}
	return raw, nil
}

func errInvalidBlock() error {
	return storage.Errorf(http.StatusBadRequest, "InvalidBlobOrBlock", "The specified blob or block content is invalid.")
}

// putBlock answers Put Block and Put Block From URL: a staged block is an
// extent with one reference, listed under the blob until a Put Block List
// commits it or the sweep drops it. Its record is durable but its file is
// not fsynced (blockRec.Volatile): Put Block List syncs the files of the
// blocks it commits, once, and Open drops the volatile blocks a crash may
// have torn; a client re-sends a block it cannot commit. Azure's durability
// promise is about committed blobs, and a 64 MiB upload of concurrent blocks
// thus costs one round of fsyncs instead of one per block.
func (s *Service) putBlock(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	id := c.query("blockid")
	raw, err := decodeBlockID(id)
	if err != nil {
		return err
	}
	var in *ingested
	if c.header("x-ms-copy-source") != "" {
		in, err = s.ingestFromURL(c)
	} else if c.r.ContentLength == 0 {
		return errInvalidBlock()
	} else {
		in, err = s.ingest(c, maxBlock, false, false)
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = s.update(func(t *txn) error {
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		blob, err := t.getBlob(blobKey(c.req.Account, c.container, c.blob, ""))
		if err != nil {
			return err
		}
		if blob != nil {
			if blob.Type != blockBlob {
				return errInvalidBlobType()
			}
			if err := checkWriteLease(&blob.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
				return err
			}
			if len(blob.Extents) > 0 && blob.Extents[0].ID != "" {
				if other, _ := base64.StdEncoding.DecodeString(blob.Extents[0].ID); len(other) != len(raw) {
					return errInvalidBlock()
				}
			}
		}
		prefix := blockPrefix(c.req.Account, c.container, c.blob)
		blocks := t.bucket(bktBlocks)
		// All block IDs of a blob have one length.
		if k, _ := blocks.Cursor().Seek(prefix); k != nil && hasPrefix(k, prefix) {
			if other, _ := base64.StdEncoding.DecodeString(string(k[len(prefix):])); len(other) != len(raw) {
				return errInvalidBlock()
			}
		}
		key := append(prefix, id...)
		var old blockRec
		if ok, err := getJSON(blocks, key, &old); err != nil {
			return err
		} else if ok {
			if err := t.unref(old.File, old.Inline); err != nil {
				return err
			}
		}
		if err := t.storeExtent(in.ext, in.data); err != nil {
			return err
		}
		ext := in.ext
		ext.ID = id
		return putJSON(blocks, key, blockRec{extent: ext, Created: now, Volatile: in.volatile})
	})
	if err != nil {
		s.discard(in)
		return err
	}
	writeChecksums(c.w.Header(), in)
	c.w.Header().Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// blockRef is one entry of a Put Block List body, in order.
type blockRef struct {
	list string // Committed, Uncommitted or Latest
	id   string
}

// parseBlockList reads the body of Put Block List keeping the order of the
// entries across the three element kinds.
func parseBlockList(r io.Reader) ([]blockRef, error) {
	dec := xml.NewDecoder(r)
	var refs []blockRef
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errXML()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				if t.Name.Local != "BlockList" {
					return nil, errXML()
				}
				continue
			}
			if depth != 2 {
				return nil, errXML()
			}
			switch t.Name.Local {
			case "Committed", "Uncommitted", "Latest":
			default:
				return nil, errXML()
			}
			var id string
			if err := dec.DecodeElement(&id, &t); err != nil {
				return nil, errXML()
			}
			depth--
			refs = append(refs, blockRef{list: t.Name.Local, id: id})
			if len(refs) > maxBlocks {
				return nil, storage.Errorf(http.StatusConflict, "BlockCountExceedsLimit", "The committed block count cannot exceed the maximum limit of 50,000 blocks.")
			}
		case xml.EndElement:
			depth--
		}
	}
	return refs, nil
}

// putBlockList answers Put Block List. The new blob's extents are the named
// blocks' extents; each gains a reference, then the old blob and every
// uncommitted block release theirs, so unused blocks go and no byte moves.
func (s *Service) putBlockList(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	props, md, tags, err := blobHeaders(c.r.Header, false)
	if err != nil {
		return err
	}
	tier, err := parseTier(c.r.Header)
	if err != nil {
		return err
	}
	refs, err := parseBlockList(io.LimitReader(c.r.Body, maxXMLBody))
	if err != nil {
		return err
	}
	now := s.now().UTC()
	rec := &blobRec{Name: c.blob, Type: blockBlob, Created: now, Modified: now, ETag: s.etag(now), Props: props, Meta: md, Tags: tags}
	if tier != "" {
		rec.Tier, rec.TierChanged = tier, now
	}
	// Sync the files of the named volatile blocks before the commit that
	// makes them a blob's. The commit checks again: a block re-staged in
	// between has a new file, which sends this round again.
	synced := map[string]bool{}
	for attempt := 0; ; attempt++ {
		err = s.syncBlocks(c, refs, synced)
		if err == nil {
			err = s.commitBlockList(c, refs, rec, synced)
		}
		if !errors.Is(err, errUnsyncedBlock) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.Header().Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// errUnsyncedBlock reports a volatile block whose file putBlockList has not
// synced: it was staged again after the sync.
var errUnsyncedBlock = errors.New("blob: block staged again during Put Block List")

// syncBlocks fsyncs the files of the volatile uncommitted blocks refs may
// name that are not in synced yet, and adds them to it.
func (s *Service) syncBlocks(c *call, refs []blockRef, synced map[string]bool) error {
	var files []string
	err := s.view(func(tx *boltlog.Tx) error {
		prefix := blockPrefix(c.req.Account, c.container, c.blob)
		blocks := tx.Bucket(bktBlocks)
		for _, ref := range refs {
			if ref.list == "Committed" {
				continue
			}
			var b blockRec
			ok, err := getJSON(blocks, append(prefix, ref.id...), &b)
			if err != nil {
				return err
			}
			if ok && b.Volatile && !synced[b.File] {
				synced[b.File] = true
				files = append(files, b.File)
			}
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		return err
	}
	if err := s.files.syncFiles(files); err != nil {
		for _, f := range files {
			delete(synced, f)
		}
		return err
	}
	return nil
}

// commitBlockList makes rec, of the blocks refs names, the blob; every
// volatile block it takes must be in synced (errUnsyncedBlock otherwise).
func (s *Service) commitBlockList(c *call, refs []blockRef, rec *blobRec, synced map[string]bool) error {
	return s.update(func(t *txn) error {
		rec.Extents, rec.Size = rec.Extents[:0], 0
		return s.replaceBlob(t, c, rec, func(old *blobRec) error {
			committed := map[string]extent{}
			if old != nil {
				if old.Type != blockBlob {
					return errInvalidBlobType()
				}
				for _, e := range old.Extents {
					if e.ID != "" {
						committed[e.ID] = e
					}
				}
			}
			prefix := blockPrefix(c.req.Account, c.container, c.blob)
			blocks := t.bucket(bktBlocks)
			for _, ref := range refs {
				var e extent
				found := false
				if ref.list != "Committed" {
					var b blockRec
					ok, err := getJSON(blocks, append(prefix, ref.id...), &b)
					if err != nil {
						return err
					}
					if ok && b.Volatile && !synced[b.File] {
						return errUnsyncedBlock
					}
					e, found = b.extent, ok
				}
				if !found && ref.list != "Uncommitted" {
					e, found = committed[ref.id]
				}
				if !found {
					return storage.Errorf(http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid.")
				}
				if err := t.ref(e.File); err != nil {
					return err
				}
				rec.Extents = append(rec.Extents, e)
				rec.Size += e.Len
			}
			return nil
		})
	})
}

type blockXML struct {
	Name string `xml:"Name"`
	Size int64  `xml:"Size"`
}

type blockListXML struct {
	XMLName     xml.Name   `xml:"BlockList"`
	Committed   []blockXML `xml:"CommittedBlocks>Block"`
	Uncommitted []blockXML `xml:"UncommittedBlocks>Block"`
}

// getBlockList answers Get Block List. A blob with only uncommitted blocks
// has a block list but no ETag.
func (s *Service) getBlockList(c *call) error {
	if err := s.allow(c, "r", storage.ResObject, "blob"); err != nil {
		return err
	}
	which := c.query("blocklisttype")
	if which == "" {
		which = "committed"
	}
	if which != "committed" && which != "uncommitted" && which != "all" {
		return errQuery("blocklisttype")
	}
	snapshot := c.query("snapshot")
	var blob *blobRec
	var body blockListXML
	err := s.view(func(tx *boltlog.Tx) error {
		t := &txn{tx: tx}
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		var err error
		blob, err = t.getBlob(blobKey(c.req.Account, c.container, c.blob, snapshot))
		if err != nil {
			return err
		}
		if blob != nil && blob.Type != blockBlob {
			return errInvalidBlobType()
		}
		if blob != nil && which != "uncommitted" {
			for _, e := range blob.Extents {
				if e.ID != "" {
					body.Committed = append(body.Committed, blockXML{Name: e.ID, Size: e.Len})
				}
			}
		}
		if which != "committed" && snapshot == "" {
			prefix := blockPrefix(c.req.Account, c.container, c.blob)
			cur := t.bucket(bktBlocks).Cursor()
			for k, v := cur.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = cur.Next() {
				var b blockRec
				if err := json.Unmarshal(v, &b); err != nil {
					return err
				}
				body.Uncommitted = append(body.Uncommitted, blockXML{Name: string(k[len(prefix):]), Size: b.Len})
			}
		}
		if blob == nil && len(body.Uncommitted) == 0 {
			return errBlobNotFound()
		}
		return nil
	})
	if err != nil {
		return err
	}
	var tags map[string]string
	if blob != nil {
		tags = blob.Tags
	}
	if err := checkTagCondition(c.ifTags, tags); err != nil {
		return err
	}
	h := c.w.Header()
	if blob != nil {
		if err := checkReadLease(&blob.Lease, c.header("x-ms-lease-id"), s.now(), true); err != nil {
			return err
		}
		writeTags(h, blob.ETag, blob.Modified)
		h.Set("x-ms-blob-content-length", strconv.FormatInt(blob.Size, 10))
	}
	return storage.WriteXML(c.w, http.StatusOK, body)
}

// sweepBlocks drops uncommitted blocks staged before cutoff.
func (s *Service) sweepBlocks(cutoff time.Time) error {
	var stale [][]byte
	err := s.view(func(tx *boltlog.Tx) error {
		return tx.Bucket(bktBlocks).ForEach(func(k, v []byte) error {
			var b blockRec
			if err := json.Unmarshal(v, &b); err == nil && b.Created.Before(cutoff) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil || len(stale) == 0 {
		return err
	}
	for len(stale) > 0 {
		n := min(len(stale), 1000)
		chunk := stale[:n]
		stale = stale[n:]
		err := s.update(func(t *txn) error {
			blocks := t.bucket(bktBlocks)
			for _, k := range chunk {
				var b blockRec
				ok, err := getJSON(blocks, k, &b)
				if err != nil || !ok || !b.Created.Before(cutoff) {
					continue
				}
				if err := t.unref(b.File, b.Inline); err != nil {
					return err
				}
				if err := blocks.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
