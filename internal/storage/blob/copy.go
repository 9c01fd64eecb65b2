package blob

import (
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

// copyBlob copies a blob of this service. The copy completes before the
// answer, so both the asynchronous and the synchronous (x-ms-requires-sync)
// forms report x-ms-copy-status: success. A block blob copy shares the
// source's immutable extents; page and append blobs get their own file,
// since those are written in place.
func (s *Service) copyBlob(c *call) error {
	if err := s.allow(c, "cw", storage.ResObject, ""); err != nil {
		return err
	}
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
	src, _, err := s.loadBlob(srcCall)
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
	// Azure can copy an archived blob to an online tier as a way of
	// rehydrating it; here an archived source is refused.
	if err := checkOnline(src, s.now()); err != nil {
		return err
	}
	tier, err := parseTier(c.r.Header)
	if err != nil {
		return err
	}
	if tier != "" && src.Type != blockBlob {
		return errInvalidBlobType()
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
	rec.Name, rec.Snapshot, rec.Lease = c.blob, "", leaseRec{}
	rec.Created, rec.Modified, rec.ETag = now, now, s.etag(now)
	if md != nil {
		rec.Meta = md
	}
	// A copy of an append blob is sealed when the request asks, whatever the
	// source is.
	rec.Sealed = src.Type == appendBlob && c.header("x-ms-seal-blob") == "true"
	// The copy's tier is the one the request names, else the default.
	rec.Tier, rec.TierChanged, rec.Rehydrate = "", time.Time{}, nil
	if tier != "" {
		rec.Tier, rec.TierChanged = tier, now
	}
	switch c.header("x-ms-copy-source-tag-option") {
	case "COPY":
	default:
		if rec.Tags, err = tagsFromHeader(c.r.Header); err != nil {
			return err
		}
	}
	rec.Copy = &copyRec{ID: copyID, Source: c.header("x-ms-copy-source"), Status: "success",
		Progress: fmt.Sprintf("%d/%d", src.Size, src.Size), Completed: now}
	if own != "" {
		rec.PageFile = own
		if src.Type == appendBlob && src.Size > 0 {
			rec.Extents = []extent{{File: own, Len: src.Size}}
		}
	}
	dstLock := s.lock(blobKey(c.req.Account, c.container, c.blob, ""))
	dstLock.Lock()
	defer dstLock.Unlock()
	err = s.update(func(t *txn) error {
		return s.replaceBlob(t, c, &rec, func(*blobRec) error {
			if src.Type == pageBlob {
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
	h.Set("x-ms-copy-id", copyID)
	h.Set("x-ms-copy-status", "success")
	c.w.WriteHeader(http.StatusAccepted)
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

// abortCopy answers Abort Copy Blob the way Azure does once a copy has
// finished.
func (s *Service) abortCopy(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	if c.header("x-ms-copy-action") != "abort" {
		return errHeader("x-ms-copy-action")
	}
	if _, _, err := s.loadBlob(c); err != nil {
		return err
	}
	// Every copy here completes before Copy Blob answers.
	return storage.Errorf(http.StatusConflict, "NoPendingCopyOperation", "There is currently no pending copy operation.")
}

// ingestFromURL reads the block of Put Block From URL: x-ms-source-range of
// a blob of this service (the whole blob without it), checked against
// x-ms-source-content-md5 / -crc64 when given. Like a Put Block body, the
// block is not fsynced until a Put Block List commits it.
func (s *Service) ingestFromURL(c *call) (*ingested, error) {
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
	exit := s.files.enter()
	defer exit()
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
	start, end := int64(0), src.Size-1
	if v := c.header("x-ms-source-range"); v != "" {
		a, b, ok, err := parseRange(http.Header{"X-Ms-Range": {v}}, src.Size)
		if err != nil {
			return nil, err
		}
		if ok {
			start, end = a, b
		}
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
	wantMD5, wantCRC, err := wantedChecksums(sums)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.readContent(pw, src, inline, start, n)) }()
	defer pr.Close()
	return s.ingestReader(pr, n, maxBlock, false, false, wantMD5, wantCRC)
}
