package blob

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// preloadInline is how many inline bytes a read fetches in its first
// transaction; the rest is fetched as the response streams.
const preloadInline = 4 << 20

// loadBlob reads the record of the blob (or snapshot) c addresses, and the
// first inline bytes of its extents.
func (s *Service) loadBlob(c *call) (*blobRec, map[string][]byte, error) {
	var rec *blobRec
	inline := map[string][]byte{}
	err := s.view(func(tx *boltlog.Tx) error {
		t := &txn{tx: tx}
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		var err error
		rec, err = t.getBlob(blobKey(c.req.Account, c.container, c.blob, c.query("snapshot")))
		if err != nil {
			return err
		}
		if rec == nil {
			return errBlobNotFound()
		}
		budget := int64(preloadInline)
		for _, e := range rec.Extents {
			if !e.Inline || budget < e.Len {
				continue
			}
			if v := t.bucket(bktInline).Get([]byte(e.File)); v != nil {
				inline[e.File] = bytes.Clone(v)
				budget -= e.Len
			}
		}
		return nil
	})
	return rec, inline, err
}

// loadForRead loads the blob c reads (loadBlob) and checks what every
// read of its content checks: the request's conditions (a 304 carries the
// blob's ETag and Last-Modified, as Azure's does) and its lease. The
// caller holds s.files.enter() while it reads the blob's files.
func (s *Service) loadForRead(c *call) (*blobRec, map[string][]byte, time.Time, error) {
	rec, inline, err := s.loadBlob(c)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	now := s.now()
	if err := checkBlobConditions(c, rec, true); err != nil {
		if se, ok := err.(*storage.Error); ok && se.Status == http.StatusNotModified {
			writeTags(c.w.Header(), rec.ETag, rec.Modified)
		}
		return nil, nil, now, err
	}
	if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), now, true); err != nil {
		return nil, nil, now, err
	}
	return rec, inline, now, nil
}

// writeBlobHeaders sets the properties Get Blob and Get Blob Properties
// answer with.
func writeBlobHeaders(h http.Header, rec *blobRec, now time.Time) {
	writeTags(h, rec.ETag, rec.Modified)
	h.Set("x-ms-creation-time", rec.Created.UTC().Format(http.TimeFormat))
	h.Set("x-ms-blob-type", rec.Type)
	h.Set("Content-Type", rec.Props.ContentType)
	if rec.Props.ContentEncoding != "" {
		h.Set("Content-Encoding", rec.Props.ContentEncoding)
	}
	if rec.Props.ContentLanguage != "" {
		h.Set("Content-Language", rec.Props.ContentLanguage)
	}
	if rec.Props.ContentDisposition != "" {
		h.Set("Content-Disposition", rec.Props.ContentDisposition)
	}
	if rec.Props.CacheControl != "" {
		h.Set("Cache-Control", rec.Props.CacheControl)
	}
	rec.Meta.WriteHeaders(h)
	writeTagCount(h, rec)
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-ms-server-encrypted", "false")
	if rec.Snapshot == "" {
		rec.Lease.writeHeaders(h, now)
	} else {
		h.Set("x-ms-lease-state", "available")
		h.Set("x-ms-lease-status", "unlocked")
	}
	switch rec.Type {
	case blockBlob:
		writeTierHeaders(h, rec, now)
	case pageBlob:
		h.Set("x-ms-blob-sequence-number", strconv.FormatInt(rec.Seq, 10))
	case appendBlob:
		h.Set("x-ms-blob-committed-block-count", strconv.Itoa(rec.Appends))
		h.Set("x-ms-blob-sealed", strconv.FormatBool(rec.Sealed))
	}
	if rec.Incremental != nil {
		h.Set("x-ms-incremental-copy", "true")
	}
	writeImmutability(h, rec)
	if !rec.Expires.IsZero() {
		h.Set("x-ms-expiry-time", rec.Expires.UTC().Format(http.TimeFormat))
	}
	if cp := rec.Copy; cp != nil {
		if cp.DestSnapshot != "" {
			h.Set("x-ms-copy-destination-snapshot", cp.DestSnapshot)
		}
		h.Set("x-ms-copy-id", cp.ID)
		h.Set("x-ms-copy-source", cp.Source)
		h.Set("x-ms-copy-status", cp.status(rec, now))
		h.Set("x-ms-copy-progress", cp.Progress)
		h.Set("x-ms-copy-completion-time", cp.Completed.UTC().Format(http.TimeFormat))
	}
}

// parseRange reads x-ms-range (preferred) or Range. It returns ok=false when
// the request has none; a range Azure cannot satisfy is 416. A malformed
// x-ms-range is 400; a malformed Range is ignored (the whole blob), as
// Azure and HTTP do.
func parseRange(h http.Header, size int64) (start, end int64, ok bool, err error) {
	name, v := rangeHeader(h)
	if v == "" {
		return 0, 0, false, nil
	}
	start, end, open, err := parseRangeSpec(v)
	if err != nil {
		if name == "Range" {
			return 0, 0, false, nil
		}
		return 0, 0, false, errHeader(name)
	}
	if open || end > size-1 {
		end = size - 1
	}
	if start >= size {
		e := storage.Errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
		e.Header = http.Header{"Content-Range": {fmt.Sprintf("bytes */%d", size)}}
		return 0, 0, false, e
	}
	return start, end, true, nil
}

// rangeHeader returns the range header that applies and its value.
func rangeHeader(h http.Header) (name, value string) {
	if v := h.Get("x-ms-range"); v != "" {
		return "x-ms-range", v
	}
	return "Range", h.Get("Range")
}

// parseRangeSpec parses bytes=START-[END] (open when END is absent).
func parseRangeSpec(v string) (start, end int64, open bool, err error) {
	spec, found := strings.CutPrefix(v, "bytes=")
	a, b, cut := strings.Cut(spec, "-")
	if !found || !cut {
		return 0, 0, false, fmt.Errorf("blob: range %q is not bytes=START-[END]", v)
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 {
		return 0, 0, false, fmt.Errorf("blob: range %q has no start", v)
	}
	if b == "" {
		return start, 0, true, nil
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
		return 0, 0, false, fmt.Errorf("blob: range %q ends before it starts", v)
	}
	return start, end, false, nil
}

// getBlob answers Get Blob and Get Blob Properties (HEAD). The reader pins
// the data files it found until the body is sent, so a concurrent overwrite
// or delete cannot pull them away mid-stream.
func (s *Service) getBlob(c *call) error {
	if err := s.allow(c, "r", storage.ResObject, "blob"); err != nil {
		return err
	}
	exit := s.files.enter()
	defer exit()
	rec, inline, now, err := s.loadForRead(c)
	if err != nil {
		return err
	}
	if c.r.Method != http.MethodHead {
		if err := checkOnline(rec, now); err != nil {
			return err
		}
	}
	h := c.w.Header()
	writeBlobHeaders(h, rec, now)
	s.applyOverrides(c, h)
	if c.r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
		if rec.Props.ContentMD5 != nil {
			h.Set("Content-MD5", base64.StdEncoding.EncodeToString(rec.Props.ContentMD5))
		}
		c.w.WriteHeader(http.StatusOK)
		return nil
	}
	start, end, ranged, err := parseRange(c.r.Header, rec.Size)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !ranged {
		start, end = 0, rec.Size-1
		if rec.Props.ContentMD5 != nil {
			h.Set("Content-MD5", base64.StdEncoding.EncodeToString(rec.Props.ContentMD5))
		}
	} else {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, rec.Size))
		if rec.Props.ContentMD5 != nil {
			h.Set("x-ms-blob-content-md5", base64.StdEncoding.EncodeToString(rec.Props.ContentMD5))
		}
	}
	n := end - start + 1
	if c.header("x-ms-range-get-content-md5") == "true" {
		// The limit is on the range asked for, not on what the blob holds.
		_, v := rangeHeader(c.r.Header)
		a, b, open, _ := parseRangeSpec(v)
		if !ranged || open || b-a+1 > 4<<20 {
			return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The range for x-ms-range-get-content-md5 must be at most 4 MiB.")
		}
		var buf bytes.Buffer
		if err := s.readContent(&buf, rec, inline, start, n); err != nil {
			return err
		}
		sum := md5.Sum(buf.Bytes())
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		c.w.WriteHeader(status)
		_, _ = c.w.Write(buf.Bytes())
		return nil
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	c.w.WriteHeader(status)
	if err := s.readContent(c.w, rec, inline, start, n); err != nil {
		// The status line is gone; all we can do is cut the response short.
		s.log.Warn("blob: streaming blob", "blob", c.req.Path, "err", err)
	}
	return nil
}

// applyOverrides applies a service SAS's response header overrides.
func (s *Service) applyOverrides(c *call, h http.Header) {
	for k, v := range c.req.ResponseOverrides() {
		h[k] = v
	}
}

// readContent writes n bytes of the blob from offset start to w.
func (s *Service) readContent(w io.Writer, rec *blobRec, inline map[string][]byte, start, n int64) error {
	if n <= 0 {
		return nil
	}
	if rec.Type == pageBlob {
		return s.copyFile(w, rec.PageFile, start, n)
	}
	var pos int64
	for _, e := range rec.Extents {
		if n <= 0 {
			break
		}
		if pos+e.Len <= start {
			pos += e.Len
			continue
		}
		off := max(start-pos, 0)
		m := min(e.Len-off, n)
		if e.Inline {
			data, ok := inline[e.File]
			if !ok {
				var err error
				if data, err = s.inlineBytes(e.File); err != nil {
					return err
				}
			}
			if _, err := w.Write(data[e.Off+off : e.Off+off+m]); err != nil {
				return fmt.Errorf("blob: writing response: %w", err)
			}
		} else if err := s.copyFile(w, e.File, e.Off+off, m); err != nil {
			return err
		}
		start += m
		n -= m
		pos += e.Len
	}
	return nil
}

func (s *Service) inlineBytes(id string) ([]byte, error) {
	var data []byte
	err := s.view(func(tx *boltlog.Tx) error {
		data = bytes.Clone(tx.Bucket(bktInline).Get([]byte(id)))
		return nil
	})
	if err == nil && data == nil {
		err = fmt.Errorf("blob: inline data %s vanished", id)
	}
	return data, err
}

// copyFile sends n bytes of a data file from off; reads past the end of the
// file (a sparse page blob's tail) are zeros.
func (s *Service) copyFile(w io.Writer, id string, off, n int64) error {
	f, err := os.Open(s.files.path(id))
	if err != nil {
		return fmt.Errorf("blob: opening data: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("blob: seeking data: %w", err)
	}
	// A LimitedReader over an *os.File lets net/http use sendfile.
	m, err := io.Copy(w, io.LimitReader(f, n))
	if err != nil {
		return fmt.Errorf("blob: sending data: %w", err)
	}
	if m < n {
		if _, err := io.CopyN(w, zeroReader{}, n-m); err != nil {
			return fmt.Errorf("blob: sending data: %w", err)
		}
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// getBlobMetadata answers Get Blob Metadata.
func (s *Service) getBlobMetadata(c *call) error {
	if err := s.allow(c, "r", storage.ResObject, "blob"); err != nil {
		return err
	}
	rec, _, _, err := s.loadForRead(c)
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	rec.Meta.WriteHeaders(c.w.Header())
	c.w.WriteHeader(http.StatusOK)
	return nil
}
