package conformance

// Table service: operations on entities.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/weftcloud/weft/internal/storage"
)

// entityPath is table(PartitionKey='pk',RowKey='rk') with quotes doubled
// and the keys URL-escaped, as the reference asks.
func entityPath(table, pk, rk string) string {
	q := func(s string) string { return url.PathEscape(strings.ReplaceAll(s, "'", "''")) }
	return "/" + table + "(PartitionKey='" + q(pk) + "',RowKey='" + q(rk) + "')"
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getEntity reads an entity back as a map, raw, in the given metadata
// level.
func (e *tableEnv) getEntity(t *testing.T, table, pk, rk, md string) map[string]any {
	t.Helper()
	r := e.do(t, http.MethodGet, entityPath(table, pk, rk), map[string]string{"Accept": "application/json;odata=" + md}, "")
	r.want(t, http.StatusOK, "")
	return r.json(t)
}

func TestTable_QueryEntities(t *testing.T) {
	cover(t, storage.Table, "Query Entities")
	env := newTableEnv(t)
	tc := env.table(t, "people")
	ctx := context.Background()
	for i, e := range []map[string]any{
		{"PartitionKey": "p", "RowKey": "1", "Name": "Ada", "Active": true},
		{"PartitionKey": "p", "RowKey": "2", "Name": "Brian", "Active": false},
		{"PartitionKey": "p", "RowKey": "3", "Name": "Cleo", "Active": true},
	} {
		if _, err := tc.AddEntity(ctx, mustJSON(t, e), nil); err != nil {
			t.Fatalf("entity %d: %v", i, err)
		}
	}
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/people()?$top=2&$select=Name", nil, "")
		r.want(t, http.StatusOK, "")
		m := r.json(t)
		if !strings.HasSuffix(m["odata.metadata"].(string), "$metadata#people&$select=Name") && !strings.HasSuffix(m["odata.metadata"].(string), "$metadata#people") {
			t.Errorf("odata.metadata %v", m["odata.metadata"])
		}
		v := m["value"].([]any)
		if len(v) != 2 || v[0].(map[string]any)["Name"] != "Ada" {
			t.Errorf("value %v", v)
		}
		if r.header.Get("x-ms-continuation-NextPartitionKey") == "" || r.header.Get("x-ms-continuation-NextRowKey") == "" {
			t.Errorf("no continuation headers with a row left: %v", r.header)
		}
	})
	t.Run("single entity", func(t *testing.T) {
		r := env.do(t, http.MethodGet, entityPath("people", "p", "1"), nil, "")
		r.want(t, http.StatusOK, "")
		if r.header.Get("ETag") == "" || r.json(t)["odata.etag"] != r.header.Get("ETag") {
			t.Errorf("ETag %q, body %s", r.header.Get("ETag"), r.body)
		}
	})
	t.Run("Boolean literals in either case", func(t *testing.T) {
		// OData's true and false; Azure takes True and FALSE too.
		for _, lit := range []string{"true", "True", "TRUE"} {
			p := tc.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr("Active eq " + lit)})
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("Active eq %s: %v", lit, err)
			}
			if len(page.Entities) != 2 {
				t.Errorf("Active eq %s: %d entities, want 2", lit, len(page.Entities))
			}
		}
	})
	t.Run("Timestamp in minimal metadata", func(t *testing.T) {
		// Azure leaves Timestamp's type out in minimal metadata (clients know
		// it); Azurite annotated it. Full metadata annotates it.
		m := env.getEntity(t, "people", "p", "1", "minimalmetadata")
		if _, ok := m["Timestamp@odata.type"]; ok || m["Timestamp"] == nil {
			t.Errorf("minimal metadata: %v", m)
		}
		m = env.getEntity(t, "people", "p", "1", "fullmetadata")
		if m["Timestamp@odata.type"] != "Edm.DateTime" {
			t.Errorf("full metadata: %v", m)
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		for _, f := range []string{"(1)", "Name eq", "Name eq 'x' and"} {
			env.do(t, http.MethodGet, "/people()?$filter="+url.QueryEscape(f), nil, "").want(t, http.StatusBadRequest, "InvalidInput")
		}
	})
	t.Run("ResourceNotFound", func(t *testing.T) {
		env.do(t, http.MethodGet, entityPath("people", "p", "9"), nil, "").want(t, http.StatusNotFound, "ResourceNotFound")
	})
	t.Run("TableNotFound", func(t *testing.T) {
		env.do(t, http.MethodGet, "/absent()", nil, "").want(t, http.StatusNotFound, "TableNotFound")
	})
}

func TestTable_InsertEntity(t *testing.T) {
	cover(t, storage.Table, "Insert Entity")
	env := newTableEnv(t)
	env.table(t, "things")
	insert := func(t *testing.T, e map[string]any) response {
		t.Helper()
		return env.do(t, http.MethodPost, "/things", nil, string(mustJSON(t, e)))
	}
	t.Run("success", func(t *testing.T) {
		r := insert(t, map[string]any{"PartitionKey": "p", "RowKey": "a", "N": 1})
		r.want(t, http.StatusCreated, "")
		m := r.json(t)
		if r.header.Get("ETag") == "" || m["odata.etag"] != r.header.Get("ETag") || m["N"] != float64(1) {
			t.Errorf("ETag %q body %v", r.header.Get("ETag"), m)
		}
		if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/things(PartitionKey='p',RowKey='a')") {
			t.Errorf("Location %q", loc)
		}
	})
	t.Run("return-no-content", func(t *testing.T) {
		r := env.do(t, http.MethodPost, "/things", map[string]string{"Prefer": "return-no-content"}, `{"PartitionKey":"p","RowKey":"b"}`)
		r.want(t, http.StatusNoContent, "")
		if r.header.Get("Preference-Applied") != "return-no-content" || r.header.Get("ETag") == "" {
			t.Errorf("headers %v", r.header)
		}
	})
	t.Run("empty keys", func(t *testing.T) {
		insert(t, map[string]any{"PartitionKey": "", "RowKey": ""}).want(t, http.StatusCreated, "")
	})
	t.Run("EntityAlreadyExists", func(t *testing.T) {
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "a"}).want(t, http.StatusConflict, "EntityAlreadyExists")
	})
	t.Run("PropertyValueTooLarge", func(t *testing.T) {
		// A string is at most 64 KiB as UTF-16: 32K characters.
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "s32k", "S": strings.Repeat("x", 32<<10)}).want(t, http.StatusCreated, "")
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "s32k1", "S": strings.Repeat("x", 32<<10+1)}).want(t, http.StatusBadRequest, "PropertyValueTooLarge")
	})
	t.Run("TooManyProperties", func(t *testing.T) {
		// 255 properties, the three system ones included.
		e := map[string]any{"PartitionKey": "p", "RowKey": "wide"}
		for i := range 252 {
			e[fmt.Sprintf("P%d", i)] = i
		}
		insert(t, e).want(t, http.StatusCreated, "")
		e["RowKey"], e["P252"] = "wider", 252
		insert(t, e).want(t, http.StatusBadRequest, "TooManyProperties")
	})
	t.Run("EntityTooLarge", func(t *testing.T) {
		e := map[string]any{"PartitionKey": "p", "RowKey": "big"}
		for i := range 17 {
			e[fmt.Sprintf("S%d", i)] = strings.Repeat("x", 32<<10) // 64 KiB each as UTF-16
		}
		insert(t, e).want(t, http.StatusBadRequest, "EntityTooLarge")
	})
	t.Run("Edm.Double out of range", func(t *testing.T) {
		for i, body := range []string{
			`{"PartitionKey":"p","RowKey":"d1","D":1e309}`,
			`{"PartitionKey":"p","RowKey":"d2","D":"1e309","D@odata.type":"Edm.Double"}`,
			`{"PartitionKey":"p","RowKey":"d3","D":-1e400,"D@odata.type":"Edm.Double"}`,
		} {
			r := env.do(t, http.MethodPost, "/things", nil, body)
			if r.status != http.StatusBadRequest {
				t.Errorf("body %d: answer %d %s, want 400", i, r.status, r.body)
			}
		}
	})
	t.Run("Edm.Boolean and Edm.Int32 given as strings", func(t *testing.T) {
		// Azure reads a typed string as the type it names.
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "typed",
			"B": "true", "B@odata.type": "Edm.Boolean", "C": "False", "C@odata.type": "Edm.Boolean",
			"I": "42", "I@odata.type": "Edm.Int32"}).want(t, http.StatusCreated, "")
		m := env.getEntity(t, "things", "p", "typed", "fullmetadata")
		if m["B"] != true || m["C"] != false || m["I"] != float64(42) {
			t.Errorf("typed strings read back as %v", m)
		}
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "typed2", "B": "yes", "B@odata.type": "Edm.Boolean"}).want(t, http.StatusBadRequest, "InvalidInput")
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "typed3", "I": "4294967296", "I@odata.type": "Edm.Int32"}).want(t, http.StatusBadRequest, "InvalidInput")
	})
	t.Run("DateTime normalized to UTC", func(t *testing.T) {
		insert(t, map[string]any{"PartitionKey": "p", "RowKey": "when", "T": "2020-01-01T10:00:00+02:00", "T@odata.type": "Edm.DateTime"}).want(t, http.StatusCreated, "")
		m := env.getEntity(t, "things", "p", "when", "minimalmetadata")
		if m["T"] != "2020-01-01T08:00:00Z" || m["T@odata.type"] != "Edm.DateTime" {
			t.Errorf("DateTime read back as %v (%v)", m["T"], m["T@odata.type"])
		}
		// And a filter's datetime literal with an offset compares in UTC.
		r := env.do(t, http.MethodGet, "/things()?$filter="+url.QueryEscape("T eq datetime'2020-01-01T09:00:00+01:00'"), nil, "")
		r.want(t, http.StatusOK, "")
		if v := r.json(t)["value"].([]any); len(v) != 1 {
			t.Errorf("filter on the same instant found %d entities", len(v))
		}
	})
	t.Run("PropertiesNeedValue", func(t *testing.T) {
		env.do(t, http.MethodPost, "/things", nil, `{"PartitionKey":"p"}`).want(t, http.StatusBadRequest, "PropertiesNeedValue")
	})
	t.Run("PropertyNameInvalid", func(t *testing.T) {
		env.do(t, http.MethodPost, "/things", nil, `{"PartitionKey":"p","RowKey":"n","1st":1}`).want(t, http.StatusBadRequest, "PropertyNameInvalid")
	})
	t.Run("OutOfRangeInput", func(t *testing.T) {
		// / \ # ? and control characters are not allowed in keys.
		insert(t, map[string]any{"PartitionKey": "a/b", "RowKey": "r"}).want(t, http.StatusBadRequest, "OutOfRangeInput")
	})
	t.Run("TableNotFound", func(t *testing.T) {
		env.do(t, http.MethodPost, "/absent", nil, `{"PartitionKey":"p","RowKey":"r"}`).want(t, http.StatusNotFound, "TableNotFound")
	})
}

// upsertCases checks Insert Or Replace and Insert Or Merge, which differ
// only in what happens to properties the request leaves out.
func upsertCases(t *testing.T, mode aztables.UpdateMode) {
	env := newTableEnv(t)
	tc := env.table(t, "things")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		// The first call inserts, the second replaces or merges.
		for _, e := range []map[string]any{{"A": 1}, {"B": 2}} {
			e["PartitionKey"], e["RowKey"] = "p", "r"
			if _, err := tc.UpsertEntity(ctx, mustJSON(t, e), &aztables.UpsertEntityOptions{UpdateMode: mode}); err != nil {
				t.Fatal(err)
			}
		}
		m := env.getEntity(t, "things", "p", "r", "nometadata")
		_, hasA := m["A"]
		if hasA != (mode == aztables.UpdateModeMerge) || m["B"] != float64(2) {
			t.Errorf("after two upserts: %v", m)
		}
	})
	t.Run("answer", func(t *testing.T) {
		method := http.MethodPut
		if mode == aztables.UpdateModeMerge {
			method = "MERGE"
		}
		// Without If-Match: 204 and the new ETag.
		r := env.do(t, method, entityPath("things", "p", "new"), nil, `{"V":1}`)
		r.want(t, http.StatusNoContent, "")
		if r.header.Get("ETag") == "" {
			t.Error("no ETag")
		}
	})
	t.Run("PropertyValueTooLarge", func(t *testing.T) {
		_, err := tc.UpsertEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "big", "S": strings.Repeat("x", 32<<10+1)}), &aztables.UpsertEntityOptions{UpdateMode: mode})
		wantErr(t, err, http.StatusBadRequest, "PropertyValueTooLarge")
	})
	t.Run("TableNotFound", func(t *testing.T) {
		_, err := env.svc.NewClient("absent").UpsertEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"r"}`), &aztables.UpsertEntityOptions{UpdateMode: mode})
		wantErr(t, err, http.StatusNotFound, "TableNotFound")
	})
}

func TestTable_InsertOrReplaceEntity(t *testing.T) {
	cover(t, storage.Table, "Insert Or Replace Entity")
	upsertCases(t, aztables.UpdateModeReplace)
}

func TestTable_InsertOrMergeEntity(t *testing.T) {
	cover(t, storage.Table, "Insert Or Merge Entity")
	upsertCases(t, aztables.UpdateModeMerge)
}

// updateCases checks Update Entity (PUT) and Merge Entity (MERGE), which
// take an If-Match.
func updateCases(t *testing.T, method string) {
	env := newTableEnv(t)
	tc := env.table(t, "things")
	ctx := context.Background()
	add, err := tc.AddEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"r","A":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	etag := string(add.ETag)
	t.Run("success", func(t *testing.T) {
		r := env.do(t, method, entityPath("things", "p", "r"), map[string]string{"If-Match": etag}, `{"B":2}`)
		r.want(t, http.StatusNoContent, "")
		if r.header.Get("ETag") == "" || r.header.Get("ETag") == etag {
			t.Errorf("ETag %q after the write, %q before", r.header.Get("ETag"), etag)
		}
		m := env.getEntity(t, "things", "p", "r", "nometadata")
		if _, hasA := m["A"]; hasA != (method == "MERGE") || m["B"] != float64(2) {
			t.Errorf("after %s: %v", method, m)
		}
		env.do(t, method, entityPath("things", "p", "r"), map[string]string{"If-Match": "*"}, `{"B":3}`).want(t, http.StatusNoContent, "")
	})
	t.Run("X-HTTP-Method", func(t *testing.T) {
		env.do(t, http.MethodPost, entityPath("things", "p", "r"), map[string]string{"If-Match": "*", "X-HTTP-Method": method}, `{"B":4}`).want(t, http.StatusNoContent, "")
	})
	t.Run("UpdateConditionNotSatisfied", func(t *testing.T) {
		env.do(t, method, entityPath("things", "p", "r"), map[string]string{"If-Match": etag}, `{"B":5}`).want(t, http.StatusPreconditionFailed, "UpdateConditionNotSatisfied")
	})
	t.Run("malformed ETag", func(t *testing.T) {
		// An If-Match that is no ETag is a bad request, not a failed
		// precondition.
		for _, bad := range []string{"garbage", `W/"datetime'not-a-time'"`, `"unterminated`} {
			env.do(t, method, entityPath("things", "p", "r"), map[string]string{"If-Match": bad}, `{"B":6}`).want(t, http.StatusBadRequest, "InvalidInput")
		}
	})
	t.Run("ResourceNotFound", func(t *testing.T) {
		env.do(t, method, entityPath("things", "p", "none"), map[string]string{"If-Match": "*"}, `{"B":1}`).want(t, http.StatusNotFound, "ResourceNotFound")
	})
	t.Run("XMethodNotUsingPost", func(t *testing.T) {
		env.do(t, http.MethodPut, entityPath("things", "p", "r"), map[string]string{"If-Match": "*", "X-HTTP-Method": "MERGE"}, `{"B":1}`).want(t, http.StatusBadRequest, "XMethodNotUsingPost")
	})
}

func TestTable_UpdateEntity(t *testing.T) {
	cover(t, storage.Table, "Update Entity")
	updateCases(t, http.MethodPut)
}

func TestTable_MergeEntity(t *testing.T) {
	cover(t, storage.Table, "Merge Entity")
	updateCases(t, "MERGE")
}

func TestTable_DeleteEntity(t *testing.T) {
	cover(t, storage.Table, "Delete Entity")
	env := newTableEnv(t)
	tc := env.table(t, "things")
	ctx := context.Background()
	add := func(pk, rk string) azcore.ETag {
		t.Helper()
		r, err := tc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": pk, "RowKey": rk}), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.ETag
	}
	etag := add("p", "r")
	t.Run("MissingRequiredHeader", func(t *testing.T) {
		env.do(t, http.MethodDelete, entityPath("things", "p", "r"), nil, "").want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("malformed ETag", func(t *testing.T) {
		env.do(t, http.MethodDelete, entityPath("things", "p", "r"), map[string]string{"If-Match": "garbage"}, "").want(t, http.StatusBadRequest, "InvalidInput")
	})
	stale := etag
	up, err := tc.UpdateEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"r","V":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	etag = up.ETag
	t.Run("UpdateConditionNotSatisfied", func(t *testing.T) {
		_, err := tc.DeleteEntity(ctx, "p", "r", &aztables.DeleteEntityOptions{IfMatch: &stale})
		wantErr(t, err, http.StatusPreconditionFailed, "UpdateConditionNotSatisfied")
	})
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodDelete, entityPath("things", "p", "r"), map[string]string{"If-Match": string(etag)}, "")
		r.want(t, http.StatusNoContent, "")
	})
	t.Run("empty keys", func(t *testing.T) {
		// An empty PartitionKey and RowKey are legal keys, deletable like any.
		add("", "")
		add("", "r")
		add("p", "")
		// The Go SDK refuses an empty PartitionKey before sending; raw HTTP.
		for _, k := range [][2]string{{"", ""}, {"", "r"}, {"p", ""}} {
			env.do(t, http.MethodDelete, entityPath("things", k[0], k[1]), map[string]string{"If-Match": "*"}, "").want(t, http.StatusNoContent, "")
		}
		if keys := env.keys(t, tc); len(keys) != 0 {
			t.Errorf("left after deleting the empty keys: %v", keys)
		}
	})
	t.Run("ResourceNotFound", func(t *testing.T) {
		_, err := tc.DeleteEntity(ctx, "p", "r", nil)
		wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	})
}
