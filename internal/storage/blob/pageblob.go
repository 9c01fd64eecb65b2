package blob

import (
	"bytes"
	"crypto/md5"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
	"github.com/weftcloud/weft/internal/vfs"
)

const (
	pageSize    = 512
	maxPageBlob = 8 << 40 // 8 TiB
	maxPutPage  = 4 << 20
)

// newPageFile creates a durable sparse file of size bytes.
func (s *Service) newPageFile(size int64) (string, error) {
	id := newID()
	tmp := filepath.Join(s.dir, "tmp", id)
	f, err := s.files.disk.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("blob: creating page file: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.files.disk.Rename(tmp, s.files.path(id))
	}
	if err == nil {
		err = s.files.disk.SyncDir(filepath.Dir(s.files.path(id)))
	}
	if err != nil {
		_ = s.files.disk.Remove(tmp)
		return "", fmt.Errorf("blob: creating page file: %w", err)
	}
	s.files.rep.Truncate(rel(id), size)
	return id, nil
}

func parseSeq(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errHeader("x-ms-blob-sequence-number")
	}
	return n, nil
}

// createPageBlob answers Put Blob for a page blob: a sparse file of the
// blob's size, so an empty 1 TiB disk costs nothing on disk.
func (s *Service) createPageBlob(c *call) error {
	size, err := strconv.ParseInt(c.header("x-ms-blob-content-length"), 10, 64)
	if err != nil || size < 0 || size%pageSize != 0 || size > maxPageBlob {
		return errHeader("x-ms-blob-content-length")
	}
	var seq int64
	if v := c.header("x-ms-blob-sequence-number"); v != "" {
		if seq, err = parseSeq(v); err != nil {
			return err
		}
	}
	if c.r.ContentLength > 0 {
		return errHeader("Content-Length")
	}
	props, md, tags, err := blobHeaders(c.r.Header, true)
	if err != nil {
		return err
	}
	file, err := s.newPageFile(size)
	if err != nil {
		return err
	}
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	now := s.now().UTC()
	rec := &blobRec{Name: c.blob, Type: pageBlob, Created: now, Modified: now, ETag: s.etag(now),
		Size: size, Props: props, Meta: md, PageFile: file, Seq: seq, Tags: tags}
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

// pageRangeHeader parses the 512-aligned range of Put Page.
func pageRangeHeader(h http.Header) (start, end int64, err error) {
	v := h.Get("x-ms-range")
	if v == "" {
		v = h.Get("Range")
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, 0, errMissingHeader("x-ms-range")
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || last < start || start%pageSize != 0 || (last+1)%pageSize != 0 {
		return 0, 0, storage.Errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidPageRange", "The page range specified is invalid.")
	}
	return start, last + 1, nil
}

// checkSeqConditions evaluates x-ms-if-sequence-number-le/lt/eq.
func checkSeqConditions(h http.Header, seq int64) error {
	for _, cond := range []struct {
		name string
		ok   func(n int64) bool
	}{
		{"x-ms-if-sequence-number-le", func(n int64) bool { return seq <= n }},
		{"x-ms-if-sequence-number-lt", func(n int64) bool { return seq < n }},
		{"x-ms-if-sequence-number-eq", func(n int64) bool { return seq == n }},
	} {
		v := h.Get(cond.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errHeader(cond.name)
		}
		if !cond.ok(n) {
			return storage.Errorf(http.StatusPreconditionFailed, "SequenceNumberConditionNotMet", "The sequence number condition specified was not met.")
		}
	}
	return nil
}

var pageBufs = sync.Pool{New: func() any { b := make([]byte, maxPutPage); return &b }}

// putPage writes or clears pages in place. Writers of one blob run in
// parallel (a VM issues concurrent writes to its disk) under the blob's
// shared lock; a write whose conditions depend on the blob's identity
// (ETag, sequence number) takes the lock exclusively so the check and the
// write are atomic.
func (s *Service) putPage(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	start, end, err := pageRangeHeader(c.r.Header)
	if err != nil {
		return err
	}
	// The pages are the body, or for Put Page From URL a range of another
	// blob.
	var body io.Reader = c.r.Body
	length, sums := c.r.ContentLength, c.r.Header
	fromURL := c.header("x-ms-copy-source") != ""
	clearPages := false
	switch c.header("x-ms-page-write") {
	case "update":
		if end-start > maxPutPage {
			return errTooLarge
		}
		if fromURL {
			if c.r.ContentLength > 0 {
				return errHeader("Content-Length")
			}
			// Pin the source's files until its pages are read.
			exitSource := s.files.enter()
			defer exitSource()
			src, err := s.openSource(c, true)
			if err != nil {
				return err
			}
			defer src.Close()
			if src.n != end-start {
				return errHeader("x-ms-source-range")
			}
			body, length, sums = src, src.n, src.sums
		}
		if length != end-start {
			return storage.Errorf(http.StatusBadRequest, "InvalidPageRange", "The page range does not match the body length.")
		}
	case "clear":
		if c.r.ContentLength > 0 {
			return errHeader("Content-Length")
		}
		clearPages = true
	default:
		return errHeader("x-ms-page-write")
	}
	var in *ingested
	var data []byte
	if !clearPages {
		bp := pageBufs.Get().(*[]byte)
		defer pageBufs.Put(bp)
		data = (*bp)[:end-start]
		if _, err := io.ReadFull(body, data); err != nil {
			return fmt.Errorf("blob: reading body: %w", err)
		}
		if in, err = verifyBuffer(sums, data); err != nil {
			return err
		}
	}
	// Pin the files found in the metadata until the data is written.
	exit := s.files.enter()
	defer exit()
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	if c.header("If-Match") != "" || c.header("If-None-Match") != "" || c.header("If-Modified-Since") != "" ||
		c.header("If-Unmodified-Since") != "" || c.header("x-ms-if-sequence-number-le") != "" ||
		c.header("x-ms-if-sequence-number-lt") != "" || c.header("x-ms-if-sequence-number-eq") != "" {
		mu.Lock()
		defer mu.Unlock()
	} else {
		mu.RLock()
		defer mu.RUnlock()
	}
	check := func(rec *blobRec) error {
		if rec.Type != pageBlob {
			return errInvalidBlobType()
		}
		if rec.Incremental != nil {
			return errIncremental()
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
		if err := checkSeqConditions(c.r.Header, rec.Seq); err != nil {
			return err
		}
		if end > rec.Size {
			return storage.Errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidPageRange", "The page range specified is invalid.")
		}
		return nil
	}
	rec, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if err := check(rec); err != nil {
		return err
	}
	if clearPages {
		err = s.punch(rec.PageFile, start, end-start)
	} else {
		err = s.writePages(rec.PageFile, start, data)
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	var out blobRec
	err = s.update(func(t *txn) error {
		key := blobKey(c.req.Account, c.container, c.blob, "")
		cur, err := t.getBlob(key)
		if err != nil {
			return err
		}
		if cur == nil || cur.PageFile != rec.PageFile {
			return errBlobNotFound()
		}
		if clearPages {
			err = t.clearRange(cur.PageFile, start, end)
		} else {
			err = t.addRange(cur.PageFile, start, end)
		}
		if err != nil {
			return err
		}
		cur.Modified, cur.ETag = now, s.etag(now)
		out = *cur
		return t.putBlob(key, cur)
	})
	if err != nil {
		return err
	}
	h := c.w.Header()
	writeTags(h, out.ETag, out.Modified)
	h.Set("x-ms-blob-sequence-number", strconv.FormatInt(out.Seq, 10))
	h.Set("x-ms-request-server-encrypted", "false")
	if in != nil {
		writeChecksums(h, in)
	}
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// writePages writes (or zeroes) pages of a page file and makes them durable.
func (s *Service) writePages(file string, off int64, data []byte) error {
	return s.files.inOrder(file, func() error {
		f, err := s.files.open(file, os.O_WRONLY)
		if err != nil {
			return fmt.Errorf("blob: opening page file: %w", err)
		}
		defer f.Close()
		if _, err := f.WriteAt(data, off); err != nil {
			return fmt.Errorf("blob: writing pages: %w", err)
		}
		if err := vfs.Datasync(f); err != nil {
			return fmt.Errorf("blob: syncing pages: %w", err)
		}
		return nil
	}, func(rel string) { s.files.rep.Write(rel, off, data) })
}

// punch zeroes [off, off+n) of a page file, freeing the disk space when the
// file system can.
func (s *Service) punch(file string, off, n int64) error {
	return s.files.inOrder(file, func() error { return s.punchHere(file, off, n) },
		func(rel string) { s.files.rep.Punch(rel, off, n) })
}

func (s *Service) punchHere(file string, off, n int64) error {
	f, err := s.files.open(file, os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("blob: opening page file: %w", err)
	}
	defer f.Close()
	if err := vfs.PunchHole(f, off, n); err != nil {
		zeros := make([]byte, min(n, 1<<20))
		for done := int64(0); done < n; {
			m := min(int64(len(zeros)), n-done)
			if _, werr := f.WriteAt(zeros[:m], off+done); werr != nil {
				return fmt.Errorf("blob: zeroing pages: %w", werr)
			}
			done += m
		}
	}
	if err := vfs.Datasync(f); err != nil {
		return fmt.Errorf("blob: syncing pages: %w", err)
	}
	return nil
}

// verifyBuffer validates the checksums of a body already in memory.
func verifyBuffer(h http.Header, data []byte) (*ingested, error) {
	wantMD5, wantCRC, err := wantedChecksums(h)
	if err != nil {
		return nil, err
	}
	in := &ingested{}
	if wantMD5 != nil {
		sum := md5.Sum(data)
		if !bytes.Equal(sum[:], wantMD5) {
			return nil, storage.Errorf(http.StatusBadRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
		}
		in.md5 = sum[:]
	}
	if wantCRC != nil {
		h := &crcHash{}
		h.Write(data)
		in.crc = h.Sum(nil)
		if !bytes.Equal(in.crc, wantCRC) {
			return nil, storage.Errorf(http.StatusBadRequest, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.")
		}
	}
	return in, nil
}

// copyPageFile copies the written pages of a page blob into a new durable
// sparse file; the caller holds the blob's lock exclusively.
func (s *Service) copyPageFile(rec *blobRec) (string, error) {
	var ranges []pageRange
	err := s.view(func(tx *boltlog.Tx) error {
		ranges = (&txn{tx: tx}).rangesFrom(rec.PageFile, 0, rec.Size)
		return nil
	})
	if err != nil {
		return "", err
	}
	id, err := s.newPageFile(rec.Size)
	if err != nil {
		return "", err
	}
	src, err := os.Open(s.files.path(rec.PageFile))
	if err != nil {
		return "", fmt.Errorf("blob: opening page file: %w", err)
	}
	defer src.Close()
	dst, err := s.files.open(id, os.O_WRONLY)
	if err != nil {
		return "", fmt.Errorf("blob: opening page file: %w", err)
	}
	for _, r := range clip(ranges, 0, rec.Size) {
		_, err = io.Copy(io.NewOffsetWriter(dst, r.start), io.NewSectionReader(src, r.start, r.end-r.start))
		if err != nil {
			break
		}
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.files.remove([]string{id})
		return "", fmt.Errorf("blob: copying pages: %w", err)
	}
	s.files.rep.Copy(rel(id))
	return id, nil
}

// setPageBlobProps resizes a page blob or changes its sequence number.
// Growing extends the file before the metadata commits; shrinking trims
// the file after, so a crash between the two never exposes stale bytes
// (a later grow truncates to the recorded size first).
func (s *Service) setPageBlobProps(c *call, props blobProps, resize int64, action string, seq int64) error {
	mu := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	mu.Lock()
	defer mu.Unlock()
	cur, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if cur.Type != pageBlob {
		return errInvalidBlobType()
	}
	if cur.Incremental != nil {
		return errIncremental()
	}
	if err := checkMutable(cur, s.now()); err != nil {
		return err
	}
	if resize > maxPageBlob {
		return errHeader("x-ms-blob-content-length")
	}
	if resize > cur.Size {
		if err := s.truncatePageFile(cur.PageFile, cur.Size, resize); err != nil {
			return err
		}
	}
	setProps := c.header("x-ms-blob-content-type") != "" || c.header("x-ms-blob-cache-control") != "" ||
		c.header("x-ms-blob-content-encoding") != "" || c.header("x-ms-blob-content-language") != "" ||
		c.header("x-ms-blob-content-disposition") != "" || c.header("x-ms-blob-content-md5") != ""
	rec, err := s.modifyBlob(c, func(t *txn, rec *blobRec) (bool, error) {
		if rec.PageFile != cur.PageFile {
			return false, errBlobNotFound()
		}
		if setProps {
			rec.Props = props
		}
		if resize >= 0 {
			if resize < rec.Size {
				if err := t.clearRange(rec.PageFile, resize, rec.Size); err != nil {
					return false, err
				}
			}
			rec.Size = resize
		}
		switch action {
		case "max":
			rec.Seq = max(rec.Seq, seq)
		case "update":
			rec.Seq = seq
		case "increment":
			rec.Seq++
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if resize >= 0 && resize < cur.Size {
		if err := s.truncatePageFile(cur.PageFile, resize, resize); err != nil {
			return err
		}
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.Header().Set("x-ms-blob-sequence-number", strconv.FormatInt(rec.Seq, 10))
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Service) truncatePageFile(file string, from, to int64) error {
	return s.files.inOrder(file, func() error { return s.truncateHere(file, from, to) }, func(rel string) {
		s.files.rep.Truncate(rel, from)
		s.files.rep.Truncate(rel, to)
	})
}

func (s *Service) truncateHere(file string, from, to int64) error {
	f, err := s.files.open(file, os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("blob: opening page file: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(from); err != nil {
		return fmt.Errorf("blob: resizing page file: %w", err)
	}
	if err := f.Truncate(to); err != nil {
		return fmt.Errorf("blob: resizing page file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: syncing page file: %w", err)
	}
	return nil
}

type pageListItem struct {
	XMLName xml.Name
	Start   int64 `xml:"Start"`
	End     int64 `xml:"End"`
}

type pageListXML struct {
	XMLName    xml.Name       `xml:"PageList"`
	Items      []pageListItem `xml:"PageRange"`
	NextMarker string         `xml:"NextMarker"`
}

// getPageRanges answers Get Page Ranges, with prevsnapshot the diff
// against a snapshot of the same blob.
func (s *Service) getPageRanges(c *call) error {
	if err := s.allow(c, "r", storage.ResObject, "blob"); err != nil {
		return err
	}
	exit := s.files.enter()
	defer exit()
	rec, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if rec.Type != pageBlob {
		return errInvalidBlobType()
	}
	if err := checkBlobConditions(c, rec, true); err != nil {
		return err
	}
	if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), s.now(), true); err != nil {
		return err
	}
	start, end := int64(0), rec.Size
	if a, b, ok, err := parseRange(c.r.Header, rec.Size); err != nil {
		return err
	} else if ok {
		start, end = a/pageSize*pageSize, b+1
	}
	var cur, prev []pageRange
	var prevRec *blobRec
	if ps := c.query("prevsnapshot"); ps != "" {
		prevRec, err = s.loadSnapshot(c, ps)
		if err != nil {
			return err
		}
	}
	err = s.view(func(tx *boltlog.Tx) error {
		t := &txn{tx: tx}
		cur = clip(t.rangesFrom(rec.PageFile, start, end), start, end)
		if prevRec != nil {
			prev = clip(t.rangesFrom(prevRec.PageFile, start, end), start, min(end, prevRec.Size))
		}
		return nil
	})
	if err != nil {
		return err
	}
	var body pageListXML
	if prevRec == nil {
		for _, r := range cur {
			body.Items = append(body.Items, pageListItem{XMLName: xml.Name{Local: "PageRange"}, Start: r.start, End: r.end - 1})
		}
	} else {
		items, err := s.diffPages(rec.PageFile, prevRec.PageFile, cur, prev)
		if err != nil {
			return err
		}
		body.Items = items
	}
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	h.Set("x-ms-blob-content-length", strconv.FormatInt(rec.Size, 10))
	return storage.WriteXML(c.w, http.StatusOK, body)
}

func (s *Service) loadSnapshot(c *call, snapshot string) (*blobRec, error) {
	var rec *blobRec
	err := s.view(func(tx *boltlog.Tx) error {
		var err error
		rec, err = (&txn{tx: tx}).getBlob(blobKey(c.req.Account, c.container, c.blob, snapshot))
		return err
	})
	if err == nil && rec == nil {
		err = storage.Errorf(http.StatusNotFound, "PreviousSnapshotNotFound", "The previous snapshot is not found.")
	}
	return rec, err
}
