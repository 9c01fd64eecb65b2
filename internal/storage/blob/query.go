package blob

import (
	"io"
	"net/http"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobquery"
)

// queryBlob answers Query Blob Contents (POST ?comp=query, of a block
// blob or one of its snapshots): the request's SQL runs over the blob
// (internal/storage/blobquery) and the answer streams as Avro, 200 with
// the blob's properties as Get Blob gives them. The request is checked
// whole (400) before any data is read; a page or append blob is 409
// InvalidBlobType, as the REST reference has the operation for block
// blobs (the Go SDK generates it under block blobs and does not expose
// it; the .NET and JavaScript SDKs do). The blob's data files are pinned
// while the answer streams, as for Get Blob.
func (s *Service) queryBlob(c *call) error {
	if err := s.allow(c, "r", storage.ResObject, "blob"); err != nil {
		return err
	}
	req, err := blobquery.ParseRequest(c.r.Body)
	if err != nil {
		return err
	}
	exit := s.files.enter()
	defer exit()
	rec, inline, now, err := s.loadForRead(c)
	if err != nil {
		return err
	}
	if rec.Type != blockBlob {
		return errInvalidBlobType()
	}
	if err := checkOnline(rec, now); err != nil {
		return err
	}
	h := c.w.Header()
	writeBlobHeaders(h, rec, now)
	h.Set("Content-Type", "avro/binary")
	c.w.WriteHeader(http.StatusOK)
	pr, pw := io.Pipe()
	read := make(chan struct{})
	go func() {
		defer close(read)
		pw.CloseWithError(s.readContent(pw, rec, inline, 0, rec.Size))
	}()
	rc := http.NewResponseController(c.w)
	err = req.Run(pr, rec.Size, c.w, func() { _ = rc.Flush() })
	// A query that ended early (LIMIT, a fatal error) stops the reader,
	// which must be done with the files before they are unpinned.
	pr.CloseWithError(io.ErrClosedPipe)
	<-read
	if err != nil {
		// The status line is gone; all we can do is cut the answer short.
		s.log.Warn("blob: answering a query", "blob", c.req.Path, "err", err)
	}
	return nil
}
