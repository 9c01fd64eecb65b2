package blob

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// copySource resolves x-ms-copy-source to a blob of this account: path-style
// (/account/container/blob) or host-style (account.blob.domain/container/blob).
func copySource(c *call) (container, name, snapshot string, err error) {
	u, perr := url.Parse(c.header("x-ms-copy-source"))
	if perr != nil || u.Path == "" {
		return "", "", "", errHeader("x-ms-copy-source")
	}
	p := strings.TrimPrefix(u.Path, "/")
	if !strings.HasPrefix(u.Hostname(), c.req.Account+".") {
		rest, ok := strings.CutPrefix(p, c.req.Account+"/")
		if !ok {
			return "", "", "", storage.Errorf(http.StatusNotImplemented, "NotImplemented", "Copying from another account or service is not supported.")
		}
		p = rest
	}
	container, name, ok := strings.Cut(p, "/")
	if !ok || name == "" {
		return "", "", "", storage.Errorf(http.StatusBadRequest, "InvalidHeaderValue", "The copy source is not a blob.")
	}
	return container, name, u.Query().Get("snapshot"), nil
}

// copyBlob answers Copy Blob, Copy Blob From URL (x-ms-requires-sync) and
// Put Blob From URL (x-ms-blob-type: BlockBlob) from a blob of this
// service. The copy completes before the answer, so the first two report
// x-ms-copy-status: success; Put Blob From URL answers as Put Blob does
// (201, no copy properties). A block blob copy shares the source's
// immutable extents; page and append blobs get their own file, since those
// are written in place.
//
// An archived source can be copied, as in Azure, only by Copy Blob and to
// an online tier: the copy is pending (x-ms-copy-status: pending) while the
// destination is rehydrated, as Set Blob Tier rehydrates.
func (s *Service) copyBlob(c *call) error {
	if err := s.allow(c, "cw", storage.ResObject, ""); err != nil {
		return err
	}
	putFromURL := false
	switch c.header("x-ms-blob-type") {
	case "":
	case blockBlob:
		putFromURL = true
	default:
		// Put Blob From URL makes block blobs only.
		return errHeader("x-ms-blob-type")
	}
	sync := putFromURL || c.header("x-ms-requires-sync") == "true"
	exit := s.files.enter()
	defer exit()
	srcContainer, srcName, srcSnap, err := copySource(c)
	if err != nil {
		return err
	}
	md, err := storage.ReadMetadata(c.r.Header)
	if err != nil {
		return err
	}
	srcCall := &call{r: c.r, req: c.req, q: url.Values{}, container: srcContainer, blob: srcName}
	if srcSnap != "" {
		srcCall.q.Set("snapshot", srcSnap)
	}
	// Hold the source still while its bytes are copied.
	srcLock := s.lock(blobKey(c.req.Account, srcContainer, srcName, ""))
	srcLock.Lock()
	src, inline, err := s.loadBlob(srcCall)
	srcLock.Unlock()
	if err != nil {
		if se, ok := err.(*storage.Error); ok && se.Status == http.StatusNotFound {
			return storage.Errorf(http.StatusNotFound, "CannotVerifyCopySource", "The specified blob does not exist.")
		}
		return err
	}
	if err := s.allowCopySource(c, srcCall); err != nil {
		return err
	}
	if err := checkSourceConditions(c.r.Header, src); err != nil {
		return err
	}
	tier, err := parseTier(c.r.Header)
	if err != nil {
		return err
	}
	if tier != "" && src.Type != blockBlob && !putFromURL {
		return errInvalidBlobType()
	}
	priority, err := parsePriority(c.r.Header)
	if err != nil {
		return err
	}
	// rehydrate is set when the source is archived: the copy then
	// rehydrates to tier.
	var rehydrate *rehydrateRec
	if err := checkOnline(src, s.now()); err != nil {
		if sync || tier == "" || tier == tierArchive {
			return err
		}
		rehydrate = newRehydration(tier, priority, s.now().UTC())
	}
	if sync {
		if err := s.checkSourceMD5(c, src, inline); err != nil {
			return err
		}
	}
	var own string // a private file for page/append copies
	switch src.Type {
	case pageBlob:
		srcLock.Lock()
		own, err = s.copyPageFile(src)
		srcLock.Unlock()
	case appendBlob:
		own, err = s.copyAppendFile(src)
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	copyID := newUUID()
	rec := *src
	rec.Name, rec.Snapshot, rec.Lease, rec.Expires = c.blob, "", leaseRec{}, time.Time{}
	rec.Created, rec.Modified, rec.ETag = now, now, s.etag(now)
	if md != nil || putFromURL {
		// Put Blob From URL, like Put Blob, takes the request's metadata
		// only; Copy Blob keeps the source's when the request has none.
		rec.Meta = md
	}
	if putFromURL {
		if rec.Props, err = putFromURLProps(c.r.Header, src.Props); err != nil {
			return err
		}
	}
	// A copy of an append blob is sealed when the request asks, whatever the
	// source is.
	rec.Sealed = src.Type == appendBlob && c.header("x-ms-seal-blob") == "true"
	// The copy's tier is the one the request names, else the default.
	rec.Tier, rec.TierChanged, rec.Rehydrate = "", time.Time{}, nil
	if tier != "" {
		rec.Tier, rec.TierChanged = tier, now
	}
	if rehydrate != nil {
		rec.Tier, rec.Rehydrate = tierArchive, rehydrate
	}
	// The copy's tags are the request's (REPLACE, the default) or the
	// source's (COPY, which takes no x-ms-tags).
	switch c.header("x-ms-copy-source-tag-option") {
	case "COPY":
		if c.header("x-ms-tags") != "" {
			return errHeader("x-ms-tags")
		}
	case "", "REPLACE":
		if rec.Tags, err = tagsFromHeader(c.r.Header); err != nil {
			return err
		}
	default:
		return errHeader("x-ms-copy-source-tag-option")
	}
	rec.Copy = &copyRec{ID: copyID, Source: c.header("x-ms-copy-source"), Status: "success",
		Progress: fmt.Sprintf("%d/%d", src.Size, src.Size), Completed: now, Rehydrating: rehydrate != nil}
	if rehydrate != nil {
		rec.Copy.Completed = rehydrate.Done
	}
	if own != "" {
		rec.PageFile = own
		if src.Type == appendBlob && src.Size > 0 {
			rec.Extents = []extent{{File: own, Len: src.Size}}
		}
	}
	if putFromURL {
		// A block blob, whatever the source: its bytes are the source's
		// extents, or the private copy of a page or append blob's file.
		rec.Copy, rec.Type, rec.Seq, rec.Appends, rec.Sealed = nil, blockBlob, 0, 0, false
		if own != "" {
			rec.PageFile, rec.Extents = "", nil
			if src.Size > 0 {
				rec.Extents = []extent{{File: own, Len: src.Size}}
			}
		}
	}
	dstLock := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	dstLock.Lock()
	defer dstLock.Unlock()
	err = s.update(func(t *txn) error {
		return s.replaceBlob(t, c, &rec, func(*blobRec) error {
			if src.Type == pageBlob && !putFromURL {
				if err := t.copyRanges(src.PageFile, own); err != nil {
					return err
				}
			}
			return t.holdBlob(&rec)
		})
	})
	if err != nil {
		if own != "" {
			s.discard(&ingested{ext: extent{File: own}})
		}
		return err
	}
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	if putFromURL {
		if rec.Props.ContentMD5 != nil {
			h.Set("Content-MD5", base64.StdEncoding.EncodeToString(rec.Props.ContentMD5))
		}
		h.Set("x-ms-request-server-encrypted", "false")
		c.w.WriteHeader(http.StatusCreated)
		return nil
	}
	h.Set("x-ms-copy-id", copyID)
	h.Set("x-ms-copy-status", rec.Copy.status(&rec, now))
	c.w.WriteHeader(http.StatusAccepted)
	return nil
}

// status is the copy's x-ms-copy-status as of now: a copy out of Archive is
// pending until its destination is rehydrated.
func (cp *copyRec) status(rec *blobRec, now time.Time) string {
	if cp.Rehydrating && rec.tierState(now).pending != nil {
		return "pending"
	}
	return cp.Status
}

// putFromURLProps are the properties of a Put Blob From URL: the source's
// unless x-ms-copy-source-blob-properties is false, each replaced by the
// one the request gives.
func putFromURLProps(h http.Header, src blobProps) (blobProps, error) {
	given, err := propsFromHeaders(h, false)
	if err != nil {
		return blobProps{}, err
	}
	props := src
	switch h.Get("x-ms-copy-source-blob-properties") {
	case "", "true":
	case "false":
		return given, nil
	default:
		return blobProps{}, errHeader("x-ms-copy-source-blob-properties")
	}
	for _, p := range []struct {
		header string
		dst    *string
		v      string
	}{
		{"x-ms-blob-content-type", &props.ContentType, given.ContentType},
		{"x-ms-blob-content-encoding", &props.ContentEncoding, given.ContentEncoding},
		{"x-ms-blob-content-language", &props.ContentLanguage, given.ContentLanguage},
		{"x-ms-blob-content-disposition", &props.ContentDisposition, given.ContentDisposition},
		{"x-ms-blob-cache-control", &props.CacheControl, given.CacheControl},
	} {
		if h.Get(p.header) != "" {
			*p.dst = p.v
		}
	}
	if given.ContentMD5 != nil {
		props.ContentMD5 = given.ContentMD5
	}
	return props, nil
}

// checkSourceMD5 checks x-ms-source-content-md5, the MD5 a Put Blob From
// URL or Copy Blob From URL says the source's bytes have, by reading them.
func (s *Service) checkSourceMD5(c *call, src *blobRec, inline map[string][]byte) error {
	v := c.header("x-ms-source-content-md5")
	if v == "" {
		return nil
	}
	want, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(want) != md5.Size {
		return errHeader("x-ms-source-content-md5")
	}
	h := md5.New()
	if err := s.readContent(h, src, inline, 0, src.Size); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return storage.Errorf(http.StatusBadRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
	}
	return nil
}

// allowCopySource decides whether the caller may read the copy source. A
// Shared Key caller may; a SAS caller needs read on objects (an account SAS)
// or a public source. A SAS on the source URL cannot be verified here, so a
// service SAS can copy only from a public container.
func (s *Service) allowCopySource(c, src *call) error {
	switch c.req.Auth.Kind {
	case storage.SharedKey, storage.SharedKeyLite:
		return nil
	case storage.AccountSAS:
		if c.req.Allow('r', storage.ResObject) == nil {
			return nil
		}
	}
	if s.allow(&call{r: c.r, req: &storage.Request{Account: c.req.Account}, container: src.container}, "", storage.ResObject, "blob") == nil {
		return nil
	}
	return storage.Errorf(http.StatusForbidden, "CannotVerifyCopySource", "This request is not authorized to read the copy source.")
}

// checkSourceConditions evaluates x-ms-source-if-* (and
// x-ms-source-if-tags) against the copy source.
func checkSourceConditions(h http.Header, src *blobRec) error {
	if v, ok := h["X-Ms-Source-If-Tags"]; ok {
		cond, err := parseTagCondition("x-ms-source-if-tags", v[0])
		if err != nil {
			return err
		}
		if !cond.eval(src.Tags) {
			return storage.Errorf(http.StatusPreconditionFailed, "SourceConditionNotMet", "The source condition specified using HTTP conditional header(s) is not met.")
		}
	}
	sh := http.Header{}
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := h.Get("x-ms-source-" + name); v != "" {
			sh.Set(name, v)
		}
	}
	if len(sh) == 0 {
		return nil
	}
	if err := checkConditions(sh, true, src.ETag, src.Modified, false); err != nil {
		return storage.Errorf(http.StatusPreconditionFailed, "SourceConditionNotMet", "The source condition specified using HTTP conditional header(s) is not met.")
	}
	return nil
}

// copyAppendFile copies the committed bytes of an append blob into a new
// file the copy can append to.
func (s *Service) copyAppendFile(src *blobRec) (string, error) {
	id, err := s.newPageFile(0)
	if err != nil {
		return "", err
	}
	if src.Size == 0 {
		return id, nil
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.copyFile(pw, src.PageFile, 0, src.Size))
	}()
	if _, err := s.appendToFile(id, 0, pr, src.Size, nil); err != nil {
		_ = pr.Close()
		s.discard(&ingested{ext: extent{File: id}})
		return "", err
	}
	return id, nil
}

// abortCopy answers Abort Copy Blob. The only copies still pending when
// Copy Blob has answered are those out of Archive; aborting one leaves the
// destination empty with its metadata, status aborted, as Azure does.
func (s *Service) abortCopy(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	if c.header("x-ms-copy-action") != "abort" {
		return errHeader("x-ms-copy-action")
	}
	id := c.query("copyid")
	if id == "" {
		return storage.Errorf(http.StatusBadRequest, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified: copyid.")
	}
	now := s.now().UTC()
	_, err := s.modifyBlob(c, func(t *txn, rec *blobRec) (bool, error) {
		cp := rec.Copy
		if cp == nil || cp.status(rec, now) != "pending" {
			return false, storage.Errorf(http.StatusConflict, "NoPendingCopyOperation", "There is currently no pending copy operation.")
		}
		if cp.ID != id {
			return false, storage.Errorf(http.StatusConflict, "CopyIdMismatch", "The specified copy ID did not match the copy ID for the pending copy operation.")
		}
		if err := t.releaseBlob(rec); err != nil {
			return false, err
		}
		rec.Tier, rec.TierChanged, rec.Rehydrate = rec.Rehydrate.To, now, nil
		rec.Extents, rec.Size, rec.Props.ContentMD5 = nil, 0, nil
		cp.Status, cp.Rehydrating, cp.Completed = "aborted", false, now
		cp.Progress = "0" + cp.Progress[strings.Index(cp.Progress, "/"):]
		return true, nil
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// ingestFromURL reads the block of Put Block From URL: x-ms-source-range of
// a blob of this service (the whole blob without it), checked against
// x-ms-source-content-md5 / -crc64 when given. Like a Put Block body, the
// block is not fsynced until a Put Block List commits it.
func (s *Service) ingestFromURL(c *call) (*ingested, error) {
	exit := s.files.enter()
	defer exit()
	src, err := s.openSource(c, false)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	wantMD5, wantCRC, err := wantedChecksums(src.sums)
	if err != nil {
		return nil, err
	}
	return s.ingestReader(src, src.n, maxBlock, false, false, wantMD5, wantCRC)
}

// source is the part of a copy source an operation "from URL" (Put Block,
// Append Block, Put Page) reads: n bytes, which must have the checksums
// in sums (Content-MD5, x-ms-content-crc64) when it names them.
type source struct {
	io.ReadCloser
	n    int64
	sums http.Header
}

// openSource opens x-ms-source-range (required when rangeRequired) of the
// blob x-ms-copy-source names, after checking the caller may read it and
// its x-ms-source-if-* conditions. The caller pins the files
// (s.files.enter) until it has read the source, and closes it.
func (s *Service) openSource(c *call, rangeRequired bool) (*source, error) {
	srcContainer, srcName, srcSnap, err := copySource(c)
	if err != nil {
		return nil, err
	}
	srcCall := &call{r: c.r, req: c.req, q: url.Values{}, container: srcContainer, blob: srcName}
	if srcSnap != "" {
		srcCall.q.Set("snapshot", srcSnap)
	}
	if err := s.allowCopySource(c, srcCall); err != nil {
		return nil, err
	}
	src, inline, err := s.loadBlob(srcCall)
	if err != nil {
		if se, ok := err.(*storage.Error); ok && se.Status == http.StatusNotFound {
			return nil, storage.Errorf(http.StatusNotFound, "CannotVerifyCopySource", "The specified blob does not exist.")
		}
		return nil, err
	}
	if err := checkSourceConditions(c.r.Header, src); err != nil {
		return nil, err
	}
	if err := checkOnline(src, s.now()); err != nil {
		return nil, err
	}
	start, end := int64(0), src.Size-1
	switch v := c.header("x-ms-source-range"); {
	case v != "":
		a, b, open, err := parseRangeSpec(v)
		if err != nil || (!open && b < a) {
			return nil, errHeader("x-ms-source-range")
		}
		if open {
			b = src.Size - 1
		}
		if b > src.Size-1 {
			return nil, storage.Errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
		}
		start, end = a, b
	case rangeRequired:
		return nil, errMissingHeader("x-ms-source-range")
	}
	n := end - start + 1
	if n <= 0 {
		return nil, errInvalidBlock()
	}
	sums := http.Header{}
	if v := c.header("x-ms-source-content-md5"); v != "" {
		sums.Set("Content-MD5", v)
	}
	if v := c.header("x-ms-source-content-crc64"); v != "" {
		sums.Set("x-ms-content-crc64", v)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.readContent(pw, src, inline, start, n)) }()
	return &source{ReadCloser: pr, n: n, sums: sums}, nil
}
