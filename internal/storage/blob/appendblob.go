package blob

import (
	"crypto/md5"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/vfs"
)

const (
	maxAppendBlock  = 4 << 20
	maxAppendBlocks = 50000
)

// An append blob owns one file (kept in blobRec.PageFile) that only ever
// grows: a block is written past the committed length, fsynced, and then the
// new length commits. A crash in between leaves bytes past the recorded
// length, which the next append overwrites; snapshots share the file and
// read only their own, shorter, length.

func (s *Service) createAppendBlob(c *call) error {
	if c.r.ContentLength > 0 {
		return errHeader("Content-Length")
	}
	props, md, tags, err := blobHeaders(c.r.Header, true)
	if err != nil {
		return err
	}
	file, err := s.newPageFile(0)
	if err != nil {
		return err
	}
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	now := s.now().UTC()
	rec := &blobRec{Name: c.blob, Type: appendBlob, Created: now, Modified: now, ETag: s.etag(now),
		Props: props, Meta: md, PageFile: file, Tags: tags}
	err = s.update(func(t *txn) error {
		return s.replaceBlob(t, c, rec, func(*blobRec) error { return t.ref(file) })
	})
	if err != nil {
		s.discard(&ingested{ext: extent{File: file}})
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.Header().Set("x-ms-request-server-encrypted", "false")
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// appendBlock answers Append Block. Appends to one blob are serialised by
// the blob's lock, which also makes the append-position and max-size
// conditions exact.
func (s *Service) appendBlock(c *call) error {
	if err := s.allow(c, "aw", storage.ResObject, ""); err != nil {
		return err
	}
	// Pin the files found in the metadata until the data is written.
	exit := s.files.enter()
	defer exit()
	// The block is the body, or for Append Block From URL a range of
	// another blob.
	var body io.Reader = c.r.Body
	length, sums := c.r.ContentLength, c.r.Header
	if c.header("x-ms-copy-source") != "" {
		if c.r.ContentLength > 0 {
			return errHeader("Content-Length")
		}
		src, err := s.openSource(c, false)
		if err != nil {
			return err
		}
		defer src.Close()
		body, length, sums = src, src.n, src.sums
	}
	if length > maxAppendBlock {
		return errTooLarge
	}
	if length == 0 {
		// An empty block is refused by its length.
		return errHeader("Content-Length")
	}
	wantMD5, wantCRC, err := wantedChecksums(sums)
	if err != nil {
		return err
	}
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	rec, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if rec.Type != appendBlob {
		return errInvalidBlobType()
	}
	if rec.Sealed {
		return errSealed()
	}
	if err := checkMutable(rec, s.now()); err != nil {
		return err
	}
	if err := checkBlobConditions(c, rec, false); err != nil {
		return err
	}
	if err := checkWriteLease(&rec.Lease, c.header("x-ms-lease-id"), s.now(), true); err != nil {
		return err
	}
	if rec.Appends >= maxAppendBlocks {
		return storage.Errorf(http.StatusConflict, "BlockCountExceedsLimit", "The committed block count cannot exceed the maximum limit of 50,000 blocks.")
	}
	if v := c.header("x-ms-blob-condition-appendpos"); v != "" {
		pos, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errHeader("x-ms-blob-condition-appendpos")
		}
		if pos != rec.Size {
			return storage.Errorf(http.StatusPreconditionFailed, "AppendPositionConditionNotMet", "The append position condition specified was not met.")
		}
	}
	maxSize := int64(-1)
	if v := c.header("x-ms-blob-condition-maxsize"); v != "" {
		if maxSize, err = strconv.ParseInt(v, 10, 64); err != nil {
			return errHeader("x-ms-blob-condition-maxsize")
		}
		if length >= 0 && rec.Size+length > maxSize {
			return storage.Errorf(http.StatusPreconditionFailed, "MaxBlobSizeConditionNotMet", "The max blob size condition specified was not met.")
		}
	}
	var hashes []hash.Hash
	mh, ch := md5.New(), &crcHash{}
	if wantMD5 != nil {
		hashes = append(hashes, mh)
	}
	if wantCRC != nil {
		hashes = append(hashes, ch)
	}
	n, err := s.appendToFile(rec.PageFile, rec.Size, body, maxAppendBlock, hashes)
	if err != nil {
		return err
	}
	if n == 0 {
		return errInvalidBlock()
	}
	if maxSize >= 0 && rec.Size+n > maxSize {
		return storage.Errorf(http.StatusPreconditionFailed, "MaxBlobSizeConditionNotMet", "The max blob size condition specified was not met.")
	}
	in := &ingested{}
	if wantMD5 != nil {
		if in.md5 = mh.Sum(nil); string(in.md5) != string(wantMD5) {
			return storage.Errorf(http.StatusBadRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
		}
	}
	if wantCRC != nil {
		if in.crc = ch.Sum(nil); string(in.crc) != string(wantCRC) {
			return storage.Errorf(http.StatusBadRequest, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.")
		}
	}
	offset := rec.Size
	out, err := s.modifyBlob(c, func(t *txn, cur *blobRec) (bool, error) {
		if cur.PageFile != rec.PageFile || cur.Size != offset {
			return false, errBlobNotFound()
		}
		if cur.Sealed {
			return false, errSealed()
		}
		if len(cur.Extents) == 0 {
			if err := t.ref(cur.PageFile); err != nil {
				return false, err
			}
		}
		cur.Size += n
		cur.Appends++
		cur.Extents = []extent{{File: cur.PageFile, Len: cur.Size}}
		return true, nil
	})
	if err != nil {
		return err
	}
	h := c.w.Header()
	writeTags(h, out.ETag, out.Modified)
	h.Set("x-ms-blob-append-offset", strconv.FormatInt(offset, 10))
	h.Set("x-ms-blob-committed-block-count", strconv.Itoa(out.Appends))
	h.Set("x-ms-request-server-encrypted", "false")
	writeChecksums(h, in)
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// appendToFile writes the body at off and makes it durable.
func (s *Service) appendToFile(file string, off int64, body io.Reader, limit int64, hashes []hash.Hash) (int64, error) {
	var n int64
	err := s.files.inOrder(file, func() error {
		f, err := s.files.open(file, os.O_RDWR)
		if err != nil {
			return fmt.Errorf("blob: opening append file: %w", err)
		}
		defer f.Close()
		if n, err = copyLimited(io.NewOffsetWriter(f, off), body, limit, hashes...); err != nil {
			return err
		}
		if err := vfs.Datasync(f); err != nil {
			return fmt.Errorf("blob: syncing append file: %w", err)
		}
		return nil
	}, func(rel string) {
		// Read back rather than kept while streaming: appends are short,
		// and the bytes are in the page cache. A long one (a copy into an
		// append blob) the replica copies whole.
		if n > maxAppendBlock {
			s.files.rep.Copy(rel)
			return
		}
		data := make([]byte, n)
		if f, err := os.Open(s.files.path(file)); err == nil {
			_, err = f.ReadAt(data, off)
			f.Close()
			if err == nil {
				s.files.rep.Write(rel, off, data)
				return
			}
		}
		// The replica copies the whole file instead.
		s.files.rep.Copy(rel)
	})
	return n, err
}

// errSealed answers a write to a sealed append blob. The Append Blob Seal
// reference does not name the code; BlobIsSealed is the one Azure answers.
func errSealed() error {
	return storage.Errorf(http.StatusConflict, "BlobIsSealed", "The blob is sealed and its content cannot be modified.")
}

// sealAppendBlob answers Append Blob Seal: the blob becomes read-only for
// good. As the reference says, sealing keeps the ETag and Last-Modified,
// and sealing a sealed blob succeeds.
func (s *Service) sealAppendBlob(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	pos := int64(-1)
	if v := c.header("x-ms-blob-condition-appendpos"); v != "" {
		var err error
		if pos, err = strconv.ParseInt(v, 10, 64); err != nil || pos < 0 {
			return errHeader("x-ms-blob-condition-appendpos")
		}
	}
	// Under the blob's lock, an append in flight finishes first.
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	rec, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		if rec.Type != appendBlob {
			return false, errInvalidBlobType()
		}
		if pos >= 0 && pos != rec.Size {
			return false, storage.Errorf(http.StatusPreconditionFailed, "AppendPositionConditionNotMet", "The append position condition specified was not met.")
		}
		rec.Sealed = true
		return false, nil
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.Header().Set("x-ms-blob-sealed", "true")
	c.w.WriteHeader(http.StatusOK)
	return nil
}
