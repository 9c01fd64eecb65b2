package conformance

// Table service: Entity Group Transaction ($batch), from "Performing
// entity group transactions" in the reference.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/weftcloud/weft/internal/storage"
)

// batchOp is one request of a change set; path starts after the account.
type batchOp struct {
	method, path string
	hdr          map[string]string
	body         string
}

// batchBody renders ops as one change set in a batch, the multipart form
// the reference gives.
func (e *tableEnv) batchBody(ops []batchOp) (contentType string, body []byte) {
	var cs bytes.Buffer
	for _, op := range ops {
		fmt.Fprintf(&cs, "--changeset_c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
		fmt.Fprintf(&cs, "%s %s%s HTTP/1.1\r\nAccept: application/json;odata=minimalmetadata\r\n", op.method, e.endpoint, op.path)
		if op.body != "" {
			cs.WriteString("Content-Type: application/json\r\n")
		}
		for k, v := range op.hdr {
			fmt.Fprintf(&cs, "%s: %s\r\n", k, v)
		}
		fmt.Fprintf(&cs, "\r\n%s\r\n", op.body)
	}
	cs.WriteString("--changeset_c--\r\n")
	var b bytes.Buffer
	fmt.Fprintf(&b, "--batch_b\r\nContent-Type: multipart/mixed; boundary=changeset_c\r\n\r\n")
	b.Write(cs.Bytes())
	b.WriteString("--batch_b--\r\n")
	return "multipart/mixed; boundary=batch_b", b.Bytes()
}

// batchPart is one answer of a change set response.
type batchPart struct {
	status int
	header http.Header
	body   []byte
}

// error reads the code and message of an OData error answer.
func (p batchPart) error(t *testing.T) (code, message string) {
	t.Helper()
	var doc struct {
		Err struct {
			Code    string `json:"code"`
			Message struct {
				Value string `json:"value"`
			} `json:"message"`
		} `json:"odata.error"`
	}
	if err := json.Unmarshal(p.body, &doc); err != nil {
		t.Fatalf("part is not an OData error: %v: %s", err, p.body)
	}
	return doc.Err.Code, doc.Err.Message.Value
}

// submit posts ops as a batch; it fails t unless the service answers 202
// with a change set response, whose parts it returns.
func (e *tableEnv) submit(t *testing.T, ops []batchOp) []batchPart {
	t.Helper()
	ct, body := e.batchBody(ops)
	r := do(t, storage.Table, e.endpoint, http.MethodPost, "/$batch", http.Header{"Content-Type": {ct}, "x-ms-version": {"2019-02-02"}, "DataServiceVersion": {"3.0;"}}, body)
	r.want(t, http.StatusAccepted, r.header.Get("x-ms-error-code"))
	return changesetParts(t, r)
}

func changesetParts(t *testing.T, r response) []batchPart {
	t.Helper()
	_, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(params["boundary"], "batchresponse_") {
		t.Fatalf("batch answer Content-Type %q", r.header.Get("Content-Type"))
	}
	outer, err := multipart.NewReader(bytes.NewReader(r.body), params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	_, cparams, err := mime.ParseMediaType(outer.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(cparams["boundary"], "changesetresponse_") {
		t.Fatalf("change set answer Content-Type %q", outer.Header.Get("Content-Type"))
	}
	var parts []batchPart
	cr := multipart.NewReader(outer, cparams["boundary"])
	for {
		p, err := cr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(p), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		parts = append(parts, batchPart{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(b)})
	}
}

func insertOp(table, pk, rk string) batchOp {
	return batchOp{method: http.MethodPost, path: "/" + table, body: fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q}`, pk, rk)}
}

// keys lists a table's entities as "pk/rk".
func (e *tableEnv) keys(t *testing.T, tc *aztables.Client) []string {
	t.Helper()
	var out []string
	p := tc.NewListEntitiesPager(nil)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(m["PartitionKey"], "/", m["RowKey"]))
		}
	}
	return out
}

func TestTable_EntityGroupTransaction(t *testing.T) {
	cover(t, storage.Table, "Entity Group Transaction")
	env := newTableEnv(t)
	tc := env.table(t, "batch")
	ctx := context.Background()
	if _, err := tc.AddEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"old","V":1}`), nil); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		parts := env.submit(t, []batchOp{
			insertOp("batch", "p", "a"),
			{method: http.MethodPost, path: "/batch", hdr: map[string]string{"Prefer": "return-no-content"}, body: `{"PartitionKey":"p","RowKey":"b"}`},
			{method: "MERGE", path: entityPath("batch", "p", "old"), hdr: map[string]string{"If-Match": "*"}, body: `{"W":2}`},
		})
		if len(parts) != 3 || parts[0].status != http.StatusCreated || parts[1].status != http.StatusNoContent || parts[2].status != http.StatusNoContent {
			t.Fatalf("parts %+v", parts)
		}
		for i, p := range parts {
			if p.header.Get("ETag") == "" {
				t.Errorf("part %d has no ETag", i)
			}
		}
		if got := strings.Join(env.keys(t, tc), " "); got != "p/a p/b p/old" {
			t.Errorf("after the batch: %s", got)
		}
	})
	t.Run("SDK", func(t *testing.T) {
		actions := []aztables.TransactionAction{
			{ActionType: aztables.TransactionTypeAdd, Entity: []byte(`{"PartitionKey":"q","RowKey":"1"}`)},
			{ActionType: aztables.TransactionTypeInsertReplace, Entity: []byte(`{"PartitionKey":"q","RowKey":"2"}`)},
		}
		if _, err := tc.SubmitTransaction(ctx, actions, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rollback names the failing index", func(t *testing.T) {
		before := env.keys(t, tc)
		for _, at := range []int{0, 2} {
			ops := []batchOp{insertOp("batch", "p", "x1"), insertOp("batch", "p", "x2"), insertOp("batch", "p", "x3")}
			ops[at] = insertOp("batch", "p", "a") // exists
			parts := env.submit(t, ops)
			if len(parts) != 1 || parts[0].status != http.StatusConflict {
				t.Fatalf("failing at %d: parts %+v", at, parts)
			}
			code, msg := parts[0].error(t)
			if code != "EntityAlreadyExists" || !strings.HasPrefix(msg, fmt.Sprintf("%d:", at)) {
				t.Errorf("failing at %d: %s %q", at, code, msg)
			}
		}
		if after := env.keys(t, tc); strings.Join(after, " ") != strings.Join(before, " ") {
			t.Errorf("a failed batch changed the table: %v, was %v", after, before)
		}
	})
	t.Run("keys with % ' and other legal characters", func(t *testing.T) {
		// Through the SDK, which writes the keys of updates and deletes into
		// the operation's URL, escaped. It does not double a quote there
		// (aztables v1.4.1), which the reference asks for; keys with quotes
		// are sent by hand below.
		keys := []string{"100%", "a b", "%25", "x+y", "é&=;", "(1)", "@:$,"}
		var actions []aztables.TransactionAction
		for _, k := range keys {
			actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertMerge, Entity: mustJSON(t, map[string]any{"PartitionKey": "odd%", "RowKey": k, "K": k})})
		}
		if _, err := tc.SubmitTransaction(ctx, actions, nil); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			got, err := tc.GetEntity(ctx, "odd%", k, nil)
			if err != nil {
				t.Fatalf("%q: %v", k, err)
			}
			var m map[string]any
			_ = json.Unmarshal(got.Value, &m)
			if m["RowKey"] != k || m["K"] != k {
				t.Errorf("%q read back as %v", k, m)
			}
		}
		quoted := []string{"it's", "''", "'", "%27"}
		var ops []batchOp
		for _, k := range quoted {
			ops = append(ops, batchOp{method: http.MethodPut, path: entityPath("batch", "odd%'", k), body: `{"Q":1}`})
		}
		for i, p := range env.submit(t, ops) {
			if p.status != http.StatusNoContent {
				t.Errorf("upsert of %q: %d %s", quoted[i], p.status, p.body)
			}
		}
		for _, k := range quoted {
			if _, err := tc.GetEntity(ctx, "odd%'", k, nil); err != nil {
				t.Errorf("%q: %v", k, err)
			}
		}
		// Deletes name the keys in the URL too.
		actions = actions[:0]
		for _, k := range keys {
			actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: mustJSON(t, map[string]any{"PartitionKey": "odd%", "RowKey": k})})
		}
		if _, err := tc.SubmitTransaction(ctx, actions, nil); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
		for _, k := range quoted {
			ops = append(ops, batchOp{method: http.MethodDelete, path: entityPath("batch", "odd%'", k), hdr: map[string]string{"If-Match": "*"}})
		}
		env.submit(t, ops)
		for _, k := range env.keys(t, tc) {
			if strings.HasPrefix(k, "odd") {
				t.Errorf("%s left after the deletes", k)
			}
		}
	})
	t.Run("empty keys", func(t *testing.T) {
		// An empty PartitionKey and RowKey are legal, in batches too.
		for i, p := range env.submit(t, []batchOp{insertOp("batch", "", ""), insertOp("batch", "", "r")}) {
			if p.status != http.StatusCreated {
				t.Fatalf("insert %d: %d %s", i, p.status, p.body)
			}
		}
		ops := []batchOp{
			{method: http.MethodDelete, path: entityPath("batch", "", ""), hdr: map[string]string{"If-Match": "*"}},
			{method: http.MethodDelete, path: entityPath("batch", "", "r"), hdr: map[string]string{"If-Match": "*"}},
		}
		for i, p := range env.submit(t, ops) {
			if p.status != http.StatusNoContent {
				t.Errorf("delete %d: %d %s", i, p.status, p.body)
			}
		}
	})
	t.Run("GET in a change set", func(t *testing.T) {
		// Queries are not allowed in a change set.
		parts := env.submit(t, []batchOp{insertOp("batch", "p", "g1"), {method: http.MethodGet, path: entityPath("batch", "p", "a")}})
		if len(parts) != 1 || parts[0].status != http.StatusBadRequest {
			t.Fatalf("parts %+v", parts)
		}
		if code, msg := parts[0].error(t); code != "InvalidInput" || !strings.HasPrefix(msg, "1:") {
			t.Errorf("%s %q", code, msg)
		}
		if _, err := tc.GetEntity(ctx, "p", "g1", nil); err == nil {
			t.Error("the change set's insert was applied")
		}
	})
	t.Run("100 operations", func(t *testing.T) {
		var ops []batchOp
		for i := range 100 {
			ops = append(ops, insertOp("batch", "hundred", fmt.Sprintf("%03d", i)))
		}
		if parts := env.submit(t, ops); len(parts) != 100 {
			t.Fatalf("%d parts for 100 operations", len(parts))
		}
		ops = append(ops, insertOp("batch", "hundred", "100"))
		for i := range ops {
			ops[i].path = "/batch"
			ops[i].body = fmt.Sprintf(`{"PartitionKey":"more","RowKey":"%03d"}`, i)
		}
		parts := env.submit(t, ops)
		if len(parts) != 1 || parts[0].status != http.StatusBadRequest {
			t.Fatalf("101 operations: parts %+v", parts)
		}
		if code, msg := parts[0].error(t); code != "InvalidInput" || !strings.Contains(msg, "exceeds the maximum 100 changes per change set") {
			t.Errorf("101 operations: %s %q", code, msg)
		}
	})
	t.Run("RequestBodyTooLarge", func(t *testing.T) {
		// The payload is at most 4 MiB.
		var ops []batchOp
		for i := range 98 {
			ops = append(ops, batchOp{method: http.MethodPost, path: "/batch", body: fmt.Sprintf(`{"PartitionKey":"big","RowKey":"%d","S":%q,"T":%[2]q}`, i, strings.Repeat("x", 21500))})
		}
		ct, body := env.batchBody(ops)
		if len(body) <= 4<<20 || len(body) > 4<<20+64<<10 {
			t.Fatalf("test batch is %d bytes; want just over 4 MiB", len(body))
		}
		r := do(t, storage.Table, env.endpoint, http.MethodPost, "/$batch", http.Header{"Content-Type": {ct}, "x-ms-version": {"2019-02-02"}}, body)
		r.want(t, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
	})
	t.Run("CommandsInBatchActOnDifferentPartitions", func(t *testing.T) {
		parts := env.submit(t, []batchOp{insertOp("batch", "p", "d1"), insertOp("batch", "other", "d2")})
		if code, msg := parts[0].error(t); parts[0].status != http.StatusBadRequest || code != "CommandsInBatchActOnDifferentPartitions" || !strings.HasPrefix(msg, "1:") {
			t.Errorf("%d %s %q", parts[0].status, code, msg)
		}
	})
	t.Run("InvalidDuplicateRow", func(t *testing.T) {
		parts := env.submit(t, []batchOp{insertOp("batch", "p", "d1"), insertOp("batch", "p", "d1")})
		if code, msg := parts[0].error(t); parts[0].status != http.StatusBadRequest || code != "InvalidDuplicateRow" || !strings.HasPrefix(msg, "1:") {
			t.Errorf("%d %s %q", parts[0].status, code, msg)
		}
	})
	t.Run("malformed ETag", func(t *testing.T) {
		parts := env.submit(t, []batchOp{insertOp("batch", "p", "e1"), {method: "MERGE", path: entityPath("batch", "p", "a"), hdr: map[string]string{"If-Match": "garbage"}, body: `{"V":1}`}})
		if code, msg := parts[0].error(t); parts[0].status != http.StatusBadRequest || code != "InvalidInput" || !strings.HasPrefix(msg, "1:") {
			t.Errorf("%d %s %q", parts[0].status, code, msg)
		}
	})
	t.Run("TableNotFound", func(t *testing.T) {
		parts := env.submit(t, []batchOp{insertOp("absent", "p", "a")})
		if code, msg := parts[0].error(t); parts[0].status != http.StatusNotFound || code != "TableNotFound" || !strings.HasPrefix(msg, "0:") {
			t.Errorf("%d %s %q", parts[0].status, code, msg)
		}
	})
}
