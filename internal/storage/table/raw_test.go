package table

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// tableSAS returns the query string of a table SAS signed by the SDK's
// own signing code. Two SDK bugs are worked around: Client.GetTableSASURL
// drops the slash between a path-style endpoint and the table name, and
// Sign signs the key range but leaves spk/srk/epk/erk out of the query.
func tableSAS(t testing.TB, env *testEnv, table string, perms aztables.SASPermissions) string {
	t.Helper()
	qs, err := aztables.SASSignatureValues{
		TableName:         table,
		Permissions:       perms.String(),
		StartTime:         time.Now().Add(-time.Minute),
		ExpiryTime:        time.Now().Add(time.Hour),
		StartPartitionKey: perms.StartPartitionKey,
		StartRowKey:       perms.StartRowKey,
		EndPartitionKey:   perms.EndPartitionKey,
		EndRowKey:         perms.EndRowKey,
	}.Sign(env.cred)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(qs)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"spk": perms.StartPartitionKey, "srk": perms.StartRowKey, "epk": perms.EndPartitionKey, "erk": perms.EndRowKey} {
		if v != "" && q.Get(k) == "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// raw sends one request authorised by a SAS and returns status, headers
// and body.
func raw(t testing.TB, method, u string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", "2019-02-02")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestMetadataFormats(t *testing.T) {
	env := newEnv(t)
	tc := env.table(t, "formats")
	e := map[string]any{
		"PartitionKey": "p", "RowKey": "r", "S": "s", "I": 1, "B": true,
		"L": "5", "L@odata.type": "Edm.Int64",
		"D": 2, "D@odata.type": "Edm.Double",
		"G": "0f8fad5b-d9cb-469f-a165-70867728950e", "G@odata.type": "Edm.Guid",
	}
	if _, err := tc.AddEntity(context.Background(), mustJSON(t, e), nil); err != nil {
		t.Fatal(err)
	}
	sas := tableSAS(t, env, "formats", aztables.SASPermissions{Read: true})
	point := env.endpoint + "/formats(PartitionKey='p',RowKey='r')?" + sas
	tests := []struct {
		accept  string
		has     []string
		hasNot  []string
		ctMatch string
	}{
		{
			accept:  "application/json;odata=nometadata",
			has:     []string{`"PartitionKey":"p"`, `"L":"5"`, `"D":2.0`, `"I":1`, `"B":true`},
			hasNot:  []string{"odata."},
			ctMatch: "odata=nometadata",
		},
		{
			accept: "application/json;odata=minimalmetadata",
			has: []string{`"odata.metadata":"` + env.endpoint + `/$metadata#formats/@Element"`, `"odata.etag":"W/\"datetime'`,
				`"L@odata.type":"Edm.Int64"`, `"G@odata.type":"Edm.Guid"`, `"D":2.0`},
			// Azure leaves Timestamp's type out of minimal metadata.
			hasNot:  []string{"odata.id", "odata.editLink", `"D@odata.type"`, `"I@odata.type"`, `"Timestamp@odata.type"`},
			ctMatch: "odata=minimalmetadata",
		},
		{
			accept: "application/json;odata=fullmetadata",
			has: []string{`"odata.type":"devstoreaccount1.formats"`, `"odata.id":"` + env.endpoint + `/formats(PartitionKey='p',RowKey='r')"`,
				`"odata.editLink":"formats(PartitionKey='p',RowKey='r')"`, `"D@odata.type":"Edm.Double"`, `"L@odata.type":"Edm.Int64"`, `"Timestamp@odata.type":"Edm.DateTime"`},
			hasNot:  []string{`"I@odata.type"`, `"S@odata.type"`},
			ctMatch: "odata=fullmetadata",
		},
	}
	for _, tt := range tests {
		for _, u := range []string{point, env.endpoint + "/formats()?" + sas} {
			status, hdr, body := raw(t, http.MethodGet, u, map[string]string{"Accept": tt.accept}, "")
			if status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", tt.accept, status, body)
			}
			if !json.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			if !strings.Contains(hdr.Get("Content-Type"), tt.ctMatch) {
				t.Errorf("%s: Content-Type %q", tt.accept, hdr.Get("Content-Type"))
			}
			isQuery := strings.Contains(u, "formats()")
			for _, s := range tt.has {
				if isQuery && strings.Contains(s, "@Element") {
					s = strings.Replace(s, "/@Element", "", 1)
				}
				if !strings.Contains(string(body), s) {
					t.Errorf("%s %s: body lacks %s:\n%s", tt.accept, u, s, body)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(string(body), s) {
					t.Errorf("%s: body has %s:\n%s", tt.accept, s, body)
				}
			}
		}
	}
	// $format overrides Accept.
	_, _, body := raw(t, http.MethodGet, point+"&$format="+url.QueryEscape("application/json;odata=nometadata"), map[string]string{"Accept": "application/json;odata=fullmetadata"}, "")
	if strings.Contains(string(body), "odata.") {
		t.Errorf("$format ignored: %s", body)
	}
}

func TestTableSAS(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "sastable")
	env.table(t, "othertable")
	for _, pk := range []string{"a", "b", "c", "d"} {
		if _, err := tc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": pk, "RowKey": "r"}), nil); err != nil {
			t.Fatal(err)
		}
	}
	perms := aztables.SASPermissions{Read: true, Add: true, Update: true, Delete: true, StartPartitionKey: "b", EndPartitionKey: "c"}
	sas := tableSAS(t, env, "sastable", perms)
	u := env.endpoint + "/sastable?" + sas
	sc, err := aztables.NewClientWithNoCredential(u, clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetEntity(ctx, "b", "r", nil); err != nil {
		t.Errorf("inside the range: %v", err)
	}
	if _, err := sc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "c", "RowKey": "new"}), nil); err != nil {
		t.Errorf("insert inside the range: %v", err)
	}
	_, err = sc.GetEntity(ctx, "a", "r", nil)
	wantStatus(t, err, http.StatusForbidden)
	_, err = sc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "z", "RowKey": "new"}), nil)
	wantStatus(t, err, http.StatusForbidden)
	_, err = sc.DeleteEntity(ctx, "d", "r", nil)
	wantStatus(t, err, http.StatusForbidden)
	// A query sees only the range.
	keys, _ := listKeys(t, sc, nil)
	if strings.Join(keys, " ") != "b/r c/new c/r" {
		t.Errorf("query through SAS: %v", keys)
	}
	// The SAS does not reach another table.
	status, _, _ := raw(t, http.MethodGet, env.endpoint+"/othertable()?"+sas, nil, "")
	if status != http.StatusForbidden {
		t.Errorf("other table through SAS: %d", status)
	}
}

func wantStatus(t testing.TB, err error, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d", status)
	}
	if got, _ := errCode(t, err); got != status {
		t.Fatalf("status %d, want %d: %v", got, status, err)
	}
}

func TestBadInput(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "badinput")
	sas := tableSAS(t, env, "badinput", aztables.SASPermissions{Read: true, Add: true, Update: true, Delete: true})
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "badinput", `{"PartitionKey":"p",`, nil, 400, "InvalidInput"},
		{"not an object", "POST", "badinput", `[1,2]`, nil, 400, "InvalidInput"},
		{"nested value", "POST", "badinput", `{"PartitionKey":"p","RowKey":"r","X":{"a":1}}`, nil, 400, "InvalidInput"},
		{"no keys", "POST", "badinput", `{"X":1}`, nil, 400, "PropertiesNeedValue"},
		{"key with slash", "POST", "badinput", `{"PartitionKey":"a/b","RowKey":"r"}`, nil, 400, "OutOfRangeInput"},
		{"key with control char", "POST", "badinput", `{"PartitionKey":"a\u0001","RowKey":"r"}`, nil, 400, "OutOfRangeInput"},
		{"bad type", "POST", "badinput", `{"PartitionKey":"p","RowKey":"r","X":"zz","X@odata.type":"Edm.Int64"}`, nil, 400, "InvalidInput"},
		{"unknown type", "POST", "badinput", `{"PartitionKey":"p","RowKey":"r","X":"1","X@odata.type":"Edm.Decimal"}`, nil, 400, "InvalidInput"},
		{"bad property name", "POST", "badinput", `{"PartitionKey":"p","RowKey":"r","my-prop":1}`, nil, 400, "PropertyNameInvalid"},
		{"bad guid", "POST", "badinput", `{"PartitionKey":"p","RowKey":"r","G":"nope","G@odata.type":"Edm.Guid"}`, nil, 400, "InvalidInput"},
		{"delete without If-Match", "DELETE", "badinput(PartitionKey='p',RowKey='r')", "", nil, 400, "MissingRequiredHeader"},
		{"bad key syntax", "GET", "badinput(PartitionKey='p')", "", nil, 400, "InvalidUri"},
		{"key with hash in URL", "PUT", "badinput(PartitionKey='a%23b',RowKey='r')", `{}`, nil, 400, "OutOfRangeInput"},
		{"$top too large", "GET", "badinput()?$top=1001", "", nil, 400, "InvalidInput"},
		{"bad continuation", "GET", "badinput()?NextPartitionKey=zzz", "", nil, 400, "InvalidInput"},
	}
	for _, tt := range tests {
		u := env.endpoint + "/" + tt.path
		if strings.Contains(u, "?") {
			u += "&" + sas
		} else {
			u += "?" + sas
		}
		status, hdr, body := raw(t, tt.method, u, tt.hdr, tt.body)
		if status != tt.status || hdr.Get("x-ms-error-code") != tt.code {
			t.Errorf("%s: %d %s, want %d %s: %s", tt.name, status, hdr.Get("x-ms-error-code"), tt.status, tt.code, body)
		}
	}

	big := map[string]any{"PartitionKey": "p", "RowKey": "big"}
	for i := range 20 {
		big["S"+string(rune('a'+i))] = strings.Repeat("x", 30000)
	}
	_, err := tc.AddEntity(ctx, mustJSON(t, big), nil)
	wantCode(t, err, http.StatusBadRequest, "EntityTooLarge")

	many := map[string]any{"PartitionKey": "p", "RowKey": "many"}
	for i := range 253 {
		many["P"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i/26)] = i
	}
	_, err = tc.AddEntity(ctx, mustJSON(t, many), nil)
	wantCode(t, err, http.StatusBadRequest, "TooManyProperties")

	_, err = tc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "r", "S": strings.Repeat("x", 70000)}), nil)
	wantCode(t, err, http.StatusBadRequest, "PropertyValueTooLarge")

	// Nothing of the refused writes landed.
	if keys, _ := listKeys(t, tc, nil); len(keys) != 0 {
		t.Errorf("refused writes stored %v", keys)
	}
}
