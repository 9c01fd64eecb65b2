package table

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// maxBatchOps is Azure's limit on operations in one entity group
// transaction.
const maxBatchOps = 100

// batchOp is one operation of a changeset as the client sent it.
type batchOp struct {
	op        entityOp
	contentID string
	noContent bool // Prefer: return-no-content on an insert
	md        metadata
}

// batch serves POST $batch: one changeset of up to 100 writes to one
// partition of one table, applied atomically in a single bbolt
// transaction. A refused operation fails the whole changeset and the
// answer names its index, as Azure does ("2:The specified entity ...").
func (s *Service) batch(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	body, err := storage.ReadBody(r.Body, maxBatchBody)
	if err != nil {
		return err
	}
	failIdx, refusal := -1, error(nil)
	fail := func(i int, err error) { failIdx, refusal = i, err }
	table, ops, err := parseBatch(r.Header.Get("Content-Type"), body)
	var parseRefusal *opError
	if err != nil && !errors.As(err, &parseRefusal) {
		return err
	}
	// The operations read before one that could not be are checked first,
	// so the answer names the first operation at fault.
	seen := make(map[string]bool, len(ops))
	for i := range ops {
		pk := ops[0].op.pk
		op := &ops[i].op
		if op.pk != pk {
			fail(i, storage.Errorf(http.StatusBadRequest, "CommandsInBatchActOnDifferentPartitions", "All commands in a batch must operate on the same entity group."))
			break
		}
		if seen[op.rk] {
			fail(i, storage.Errorf(http.StatusBadRequest, "InvalidDuplicateRow", "The batch request contains multiple changes with same row key. An entity can appear only once in a batch request."))
			break
		}
		seen[op.rk] = true
		if err := batchAllowed(req, table, op); err != nil {
			fail(i, err)
			break
		}
	}
	if refusal == nil && parseRefusal != nil {
		fail(parseRefusal.index, parseRefusal.err)
	}
	var results []*entity
	if refusal == nil {
		lower := strings.ToLower(table)
		err = s.st.write(req.Account, lower, func(w *boltlog.Bucket) error {
			// Row keys are unique in a batch, so every operation can be
			// checked against the state before the batch, then all applied.
			ts := s.st.now()
			stagedOps := make([]staged, len(ops))
			for i := range ops {
				st, err := stage(w, &ops[i].op, ts)
				if err != nil {
					fail(i, err)
					return err
				}
				stagedOps[i] = st
			}
			for _, st := range stagedOps {
				st.apply(w)
				results = append(results, st.result)
			}
			return nil
		})
		if err != nil && refusal == nil {
			// The store's own failure, or a table that does not exist.
			var se *storage.Error
			if !errors.As(err, &se) {
				return err
			}
			fail(0, err)
		}
	}
	var se *storage.Error
	if refusal != nil && !errors.As(refusal, &se) {
		return refusal
	}
	setCommon(w)
	batchB, csB := "batchresponse_"+randomID(), "changesetresponse_"+randomID()
	var out bytes.Buffer
	fmt.Fprintf(&out, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", batchB, csB)
	part := func(status int, hdr http.Header, body []byte) {
		fmt.Fprintf(&out, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n", csB)
		fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		_ = hdr.Write(&out)
		out.WriteString("\r\n")
		out.Write(body)
		out.WriteString("\r\n")
	}
	if se != nil {
		hdr := http.Header{}
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("DataServiceVersion", "3.0;")
		hdr.Set("Content-Type", "application/json;odata=minimalmetadata;streaming=true;charset=utf-8")
		if failIdx < len(ops) && ops[failIdx].contentID != "" {
			hdr.Set("Content-ID", ops[failIdx].contentID)
		}
		msg := fmt.Sprintf("%d:%s\nRequestId:%s", failIdx, se.Message, req.RequestID)
		b := []byte(`{"odata.error":{"code":`)
		b = appendString(b, se.Code)
		b = append(b, `,"message":{"lang":"en-US","value":`...)
		b = appendString(b, msg)
		b = append(b, "}}}"...)
		part(se.Status, hdr, b)
		// The outer status is 202 either way; the code helps clients that
		// only look at headers.
		w.Header().Set("x-ms-error-code", se.Code)
	} else {
		c := &docContext{base: baseURL(r, req), account: req.Account, table: table}
		for i, bo := range ops {
			hdr := http.Header{}
			hdr.Set("X-Content-Type-Options", "nosniff")
			hdr.Set("Cache-Control", "no-cache")
			hdr.Set("DataServiceVersion", "3.0;")
			if bo.contentID != "" {
				hdr.Set("Content-ID", bo.contentID)
			}
			res := results[i]
			if res != nil {
				hdr.Set("ETag", etag(res.ts))
			}
			if bo.op.kind == writeInsert && !bo.noContent {
				c.md = bo.md
				hdr.Set("Content-Type", bo.md.contentType())
				hdr.Set("Location", c.base+keyPath(table, res.pk, res.rk))
				part(http.StatusCreated, hdr, appendEntity(nil, c, res, true))
				continue
			}
			if bo.op.kind == writeInsert {
				hdr.Set("Preference-Applied", "return-no-content")
			}
			part(http.StatusNoContent, hdr, nil)
		}
	}
	fmt.Fprintf(&out, "--%s--\r\n--%s--\r\n", csB, batchB)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+batchB)
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(out.Bytes())
	return nil
}

func batchAllowed(req *storage.Request, table string, op *entityOp) error {
	var perm byte
	switch op.kind {
	case writeInsert:
		perm = 'a'
	case writeDelete:
		perm = 'd'
	default:
		perm = 'u'
		if op.ifMatch == "" {
			if err := req.Allow('a', storage.ResObject); err != nil {
				return err
			}
		}
	}
	if err := req.Allow(perm, storage.ResObject); err != nil {
		return err
	}
	return checkSAS(req, table, op.pk, op.rk)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func batchError(format string, args ...any) error {
	return storage.Errorf(http.StatusBadRequest, "InvalidInput", format, args...)
}

// opError is the refusal of one operation of a changeset, which Azure
// answers inside the changeset response, naming the operation's index,
// rather than as the batch's own status.
type opError struct {
	index int
	err   error
}

func (e *opError) Error() string { return fmt.Sprintf("table: batch operation %d: %v", e.index, e.err) }

func (e *opError) Unwrap() error { return e.err }

// parseBatch reads a $batch body: a multipart/mixed holding one changeset
// (itself multipart/mixed) of application/http requests. A malformed body
// is refused as a whole; an operation that cannot be part of a changeset
// comes back as an *opError, with the operations before it.
func parseBatch(contentType string, body []byte) (string, []batchOp, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return "", nil, batchError("A batch request must be multipart/mixed with a boundary.")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		return "", nil, batchError("The batch request has no changeset.")
	}
	mt, cparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || cparams["boundary"] == "" {
		return "", nil, batchError("Only changesets are supported in a batch request.")
	}
	cr := multipart.NewReader(p, cparams["boundary"])
	var ops []batchOp
	table := ""
	for {
		op, err := cr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, batchError("The changeset is malformed: %v.", err)
		}
		if len(ops) == maxBatchOps {
			return table, ops, &opError{len(ops), batchError("The batch request operation exceeds the maximum %d changes per change set.", maxBatchOps)}
		}
		raw, err := io.ReadAll(op)
		if err != nil {
			return "", nil, batchError("The changeset is malformed: %v.", err)
		}
		bo, t, err := parseBatchOp(raw)
		if err != nil {
			return table, ops, &opError{len(ops), err}
		}
		if table == "" {
			table = t
		} else if !strings.EqualFold(table, t) {
			return table, ops, &opError{len(ops), batchError("All operations of a batch must address the same table.")}
		}
		ops = append(ops, bo)
	}
	if len(ops) == 0 {
		return "", nil, batchError("The changeset is empty.")
	}
	if _, err := mr.NextPart(); err != io.EOF {
		return "", nil, batchError("A batch request may hold only one changeset.")
	}
	return table, ops, nil
}

// parseBatchOp reads one embedded request: request line, headers, body.
// The body runs to the end of the part whatever Content-Length says.
func parseBatchOp(raw []byte) (batchOp, string, error) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	line, err := tp.ReadLine()
	if err != nil {
		return batchOp{}, "", batchError("An operation has no request line.")
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && err != io.EOF {
		return batchOp{}, "", batchError("An operation's headers are malformed.")
	}
	rest, _ := io.ReadAll(tp.R)
	body := bytes.TrimRight(rest, "\r\n")
	f := strings.Fields(line)
	if len(f) != 3 {
		return batchOp{}, "", batchError("An operation's request line is malformed.")
	}
	method, target := strings.ToUpper(f[0]), f[1]
	u, err := url.Parse(target)
	if err != nil {
		return batchOp{}, "", batchError("An operation's URL is malformed.")
	}
	seg := u.EscapedPath()
	seg = seg[strings.LastIndexByte(seg, '/')+1:]
	resPath, err := url.PathUnescape(seg)
	if err != nil {
		return batchOp{}, "", batchError("An operation's URL is malformed.")
	}
	res, err := parseResource(resPath)
	if err != nil {
		return batchOp{}, "", err
	}
	if res.tableOp {
		return batchOp{}, "", batchError("Only entity operations are allowed in a batch.")
	}
	if xm := hdr.Get("X-HTTP-Method"); xm != "" && method == http.MethodPost {
		method = strings.ToUpper(xm)
	}
	bo := batchOp{contentID: hdr.Get("Content-ID"), md: acceptMetadata(hdr.Get("Accept"))}
	bo.op.ifMatch = hdr.Get("If-Match")
	if err := checkIfMatch(bo.op.ifMatch); err != nil {
		return batchOp{}, "", err
	}
	switch {
	case method == http.MethodPost && !res.keyed:
		bo.op.kind = writeInsert
		bo.noContent = strings.Contains(hdr.Get("Prefer"), "return-no-content")
	case method == http.MethodPut && res.keyed:
		bo.op.kind = writeReplace
	case (method == "MERGE" || method == http.MethodPatch) && res.keyed:
		bo.op.kind = writeMerge
	case method == http.MethodDelete && res.keyed:
		bo.op.kind = writeDelete
		if bo.op.ifMatch == "" {
			return batchOp{}, "", storage.Errorf(http.StatusBadRequest, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: If-Match.")
		}
	case method == http.MethodGet:
		// The reference: a query must be the only request of its batch,
		// outside any change set; the table service takes none.
		return batchOp{}, "", batchError("A query operation is not allowed in a change set.")
	default:
		return batchOp{}, "", batchError("The operation %s %s is not allowed in a batch.", method, resPath)
	}
	if bo.op.kind != writeDelete {
		e, err := parseEntity(body, bo.op.kind == writeInsert)
		if err != nil {
			return batchOp{}, "", err
		}
		bo.op.e = e
	}
	if res.keyed {
		if err := validateKeys(res.pk, res.rk); err != nil {
			return batchOp{}, "", err
		}
		bo.op.pk, bo.op.rk = res.pk, res.rk
	} else {
		bo.op.pk, bo.op.rk = bo.op.e.pk, bo.op.e.rk
	}
	return bo, res.table, nil
}

func acceptMetadata(accept string) metadata {
	switch {
	case strings.Contains(accept, "odata=nometadata"):
		return noMetadata
	case strings.Contains(accept, "odata=fullmetadata"):
		return fullMetadata
	}
	return minimalMetadata
}
