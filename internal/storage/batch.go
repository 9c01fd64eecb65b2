package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
)

// Blob Batch (POST ?comp=batch on the account, or on a container with
// restype=container) carries up to 256 Delete Blob or Set Blob Tier
// requests, all of one kind, as a multipart/mixed body of HTTP requests.
// Each sub-request carries its own credentials (the SDKs sign each one),
// so the front end answers them as it answers any request, through the
// same authentication and the same handler, and gathers the answers into
// one multipart/mixed answer, 202 Accepted.

const (
	maxBatchRequests = 256
	maxBatchBody     = 4 << 20 // Azure's limit on the batch request body
)

// isBatch reports whether r is a Blob Batch.
func (f *front) isBatch(r *http.Request) bool {
	return f.svc == Blob && r.Method == http.MethodPost && r.URL.Query().Get("comp") == "batch"
}

func errBatch(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid: %s.", fmt.Sprintf(format, args...))
}

// serveBatch answers a Blob Batch that prepare has authenticated.
func (f *front) serveBatch(w http.ResponseWriter, r *http.Request, req *Request, version string) {
	if req.Auth.Kind == Anonymous {
		f.fail(w, r, req, errAnonymous())
		return
	}
	container, _, _ := strings.Cut(req.Path, "/")
	if container != "" && (strings.Contains(req.Path, "/") || r.URL.Query().Get("restype") != "container") {
		f.fail(w, r, req, errBatch("a batch is posted to the account or to a container with restype=container"))
		return
	}
	subs, err := readBatch(r)
	if err != nil {
		f.fail(w, r, req, err)
		return
	}
	boundary := "batchresponse_" + newRequestID()
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	if err := mw.SetBoundary(boundary); err != nil {
		f.fail(w, r, req, err)
		return
	}
	if len(subs) > maxBatchRequests {
		// Azure answers 202 with one part, without Content-ID, that carries
		// the batch's error; the SDKs read it as the batch failing.
		rec := newPartRecorder()
		WriteError(rec, r, f.svc, Errorf(http.StatusBadRequest, "ExceedsMaxBatchRequestCount",
			"The batch operation exceeds the maximum number of allowed subrequests (%d).", maxBatchRequests))
		rec.writePart(mw, "")
	} else {
		for i, sub := range subs {
			rec := newPartRecorder()
			if err := f.inScope(sub, req.Account, container); err != nil {
				rec.h.Set("x-ms-request-id", newRequestID())
				WriteError(rec, sub, f.svc, err)
			} else {
				f.serve(rec, sub, version)
			}
			rec.writePart(mw, strconv.Itoa(i))
		}
	}
	if err := mw.Close(); err != nil {
		f.fail(w, r, req, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "multipart/mixed; boundary="+boundary)
	h.Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(out.Bytes())
}

// readBatch parses the sub-requests of a batch body and checks they are
// Delete Blob or Set Blob Tier, all of one kind.
func readBatch(r *http.Request) ([]*http.Request, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		e := Errorf(http.StatusBadRequest, "InvalidHeaderValue", "The Content-Type of a batch must be multipart/mixed with a boundary.")
		e.Header = http.Header{"X-Ms-Invalid-Header-Name": {"Content-Type"}}
		return nil, e
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBody+1))
	if err != nil {
		return nil, fmt.Errorf("storage: reading batch: %w", err)
	}
	if len(body) > maxBatchBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit (4 MiB for a batch).")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var subs []*http.Request
	kind := ""
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errBatch("the body is not multipart/mixed: %v", err)
		}
		sub, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			return nil, errBatch("part %d is not an HTTP request: %v", len(subs), err)
		}
		k := ""
		switch q := sub.URL.Query(); {
		case sub.Method == http.MethodDelete && q.Get("comp") == "":
			k = "delete"
		case sub.Method == http.MethodPut && q.Get("comp") == "tier":
			k = "tier"
		default:
			return nil, errBatch("sub-request %d (%s %s) is neither Delete Blob nor Set Blob Tier", len(subs), sub.Method, sub.URL.Path)
		}
		if kind != "" && k != kind {
			return nil, errBatch("the sub-requests of a batch must all be Delete Blob or all Set Blob Tier")
		}
		kind = k
		sub.Host, sub.RemoteAddr = r.Host, r.RemoteAddr
		sub.RequestURI = ""
		subs = append(subs, sub.WithContext(r.Context()))
	}
	if len(subs) == 0 {
		return nil, errBatch("the batch has no sub-requests")
	}
	return subs, nil
}

// inScope refuses a sub-request outside the batch's account, or outside
// its container when the batch was posted to one: the sub-request's own
// credentials may reach further than the batch's address says.
func (f *front) inScope(sub *http.Request, account, container string) error {
	acct, path, _ := f.resolve(sub)
	if acct != account {
		return errBatch("a sub-request addresses account %s, not %s", acct, account)
	}
	if c, _, _ := strings.Cut(path, "/"); container != "" && c != container {
		return errBatch("a sub-request addresses container %s, not %s", c, container)
	}
	return nil
}

// partRecorder is the ResponseWriter of one sub-request.
type partRecorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newPartRecorder() *partRecorder { return &partRecorder{h: http.Header{}} }

func (p *partRecorder) Header() http.Header { return p.h }

func (p *partRecorder) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *partRecorder) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.body.Write(b)
}

// writePart adds the recorded answer as one part of the batch answer;
// contentID is the sub-request's index ("" for an error of the batch).
func (p *partRecorder) writePart(mw *multipart.Writer, contentID string) {
	hdr := map[string][]string{"Content-Type": {"application/http"}}
	if contentID != "" {
		hdr["Content-ID"] = []string{contentID}
	}
	w, err := mw.CreatePart(hdr)
	if err != nil {
		return // writes to a bytes.Buffer do not fail
	}
	if p.status == 0 {
		p.status = http.StatusOK
	}
	p.h.Del("Date")
	if p.body.Len() > 0 {
		p.h.Set("Content-Length", strconv.Itoa(p.body.Len()))
	}
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", p.status, http.StatusText(p.status))
	_ = p.h.Write(w)
	_, _ = io.WriteString(w, "\r\n")
	_, _ = w.Write(p.body.Bytes())
}
