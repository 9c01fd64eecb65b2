package conformance

// Table service: operations on the account and on tables. Entity
// operations are in table_entity_test.go, Entity Group Transaction in
// table_batch_test.go.

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
	"github.com/weftcloud/weft/internal/storage/table"
)

// tableEnv is a table service of its own, served on loopback through the
// storage front end, with an SDK client for the development account.
type tableEnv struct {
	endpoint string
	svc      *aztables.ServiceClient
}

func newTableEnv(t *testing.T) *tableEnv {
	t.Helper()
	s, err := table.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	endpoint := storagetest.Serve(t, storage.Table, s)
	cred, err := aztables.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := aztables.NewServiceClientWithSharedKey(endpoint, cred, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry:                           policy.RetryOptions{MaxRetries: -1},
		InsecureAllowCredentialWithHTTP: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &tableEnv{endpoint: endpoint, svc: svc}
}

// table creates a table and returns its client.
func (e *tableEnv) table(t *testing.T, name string) *aztables.Client {
	t.Helper()
	c := e.svc.NewClient(name)
	if _, err := c.CreateTable(context.Background(), nil); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	return c
}

// do sends a signed raw request; JSON bodies get the OData headers the
// reference asks for.
func (e *tableEnv) do(t *testing.T, method, path string, hdr map[string]string, body string) response {
	t.Helper()
	h := http.Header{}
	h.Set("x-ms-version", "2019-02-02")
	h.Set("DataServiceVersion", "3.0;")
	h.Set("Accept", "application/json;odata=minimalmetadata")
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return do(t, storage.Table, e.endpoint, method, path, h, []byte(body))
}

// json decodes an OData JSON answer into a map.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %.300s", err, r.body)
	}
	return m
}

func TestTable_SetTableServiceProperties(t *testing.T) {
	cover(t, storage.Table, "Set Table Service Properties")
	env := newTableEnv(t)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		props := aztables.ServiceProperties{
			Cors: []*aztables.CorsRule{{
				AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,PUT"),
				AllowedHeaders: to.Ptr("x-ms-*"), ExposedHeaders: to.Ptr("x-ms-request-id"),
				MaxAgeInSeconds: to.Ptr[int32](60),
			}},
			Logging: &aztables.Logging{
				Version: to.Ptr("1.0"), Read: to.Ptr(true), Write: to.Ptr(false), Delete: to.Ptr(false),
				RetentionPolicy: &aztables.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](7)},
			},
		}
		if _, err := env.svc.SetProperties(ctx, props, nil); err != nil {
			t.Fatal(err)
		}
		got, err := env.svc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Cors) != 1 || *got.Cors[0].AllowedOrigins != "https://example.com" || *got.Cors[0].MaxAgeInSeconds != 60 {
			t.Errorf("CORS rules after set: %+v", got.Cors)
		}
		if got.Logging == nil || !*got.Logging.Read || *got.Logging.RetentionPolicy.Days != 7 {
			t.Errorf("logging after set: %+v", got.Logging)
		}
	})
	t.Run("answer", func(t *testing.T) {
		// 202 Accepted with no body.
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"},
			`<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><Cors/></StorageServiceProperties>`)
		r.want(t, http.StatusAccepted, "")
		if r.header.Get("x-ms-request-id") == "" || len(r.body) != 0 {
			t.Errorf("answer headers %v body %q", r.header, r.body)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"}, `<StorageServiceProperties><Cors>`)
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
		six := strings.Repeat(`<CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods><AllowedHeaders></AllowedHeaders><ExposedHeaders></ExposedHeaders><MaxAgeInSeconds>1</MaxAgeInSeconds></CorsRule>`, 6)
		r = env.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"}, `<StorageServiceProperties><Cors>`+six+`</Cors></StorageServiceProperties>`)
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
}

func TestTable_GetTableServiceProperties(t *testing.T) {
	cover(t, storage.Table, "Get Table Service Properties")
	env := newTableEnv(t)
	t.Run("success", func(t *testing.T) {
		// An account that never set them answers the defaults: everything off.
		got, err := env.svc.GetProperties(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Logging == nil || *got.Logging.Read || got.HourMetrics == nil || *got.HourMetrics.Enabled || len(got.Cors) != 0 {
			t.Errorf("default properties: %+v", got.ServiceProperties)
		}
	})
	t.Run("answer", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/?restype=service&comp=properties", nil, "")
		r.want(t, http.StatusOK, "")
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
			t.Errorf("Content-Type %q, want application/xml", ct)
		}
		var doc struct {
			XMLName xml.Name `xml:"StorageServiceProperties"`
		}
		if err := xml.Unmarshal(r.body, &doc); err != nil {
			t.Errorf("body is not StorageServiceProperties: %v: %s", err, r.body)
		}
	})
}

func TestTable_GetTableServiceStats(t *testing.T) {
	cover(t, storage.Table, "Get Table Service Stats")
	env := newTableEnv(t)
	// The reference serves this on the secondary endpoint of an RA-GRS
	// account (ACCOUNT-secondary); Weft has one location, always live, and
	// answers it there and on the primary.
	cred, err := aztables.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	secondary, err := aztables.NewServiceClientWithSharedKey(env.endpoint+"-secondary", cred, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{InsecureAllowCredentialWithHTTP: true}})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*aztables.ServiceClient{"primary": env.svc, "secondary": secondary} {
		got, err := c.GetStatistics(context.Background(), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.GeoReplication == nil || got.GeoReplication.Status == nil || *got.GeoReplication.Status != aztables.GeoReplicationStatusLive {
			t.Errorf("%s: stats: %+v", name, got.GeoReplication)
		}
	}
}

func TestTable_PreflightTableRequest(t *testing.T) {
	cover(t, storage.Table, "Preflight Table Request")
	env := newTableEnv(t)
	preflight := func(t *testing.T, origin, method string) response {
		return preflightRequest(t, env.endpoint+"/Tables", origin, method, "x-ms-version")
	}
	t.Run("CorsPreflightFailure", func(t *testing.T) {
		// No rules yet: 403.
		preflight(t, "https://example.com", "GET").want(t, http.StatusForbidden, "CorsPreflightFailure")
	})
	props := aztables.ServiceProperties{Cors: []*aztables.CorsRule{{
		AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,MERGE"),
		AllowedHeaders: to.Ptr("x-ms-*"), ExposedHeaders: to.Ptr("x-ms-request-id"), MaxAgeInSeconds: to.Ptr[int32](30),
	}}}
	if _, err := env.svc.SetProperties(context.Background(), props, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		r := preflight(t, "https://example.com", "MERGE")
		r.want(t, http.StatusOK, "")
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "MERGE",
			"Access-Control-Allow-Headers": "x-ms-version", "Access-Control-Max-Age": "30",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("no matching rule", func(t *testing.T) {
		preflight(t, "https://other.example", "GET").want(t, http.StatusForbidden, "CorsPreflightFailure")
		preflight(t, "https://example.com", "DELETE").want(t, http.StatusForbidden, "CorsPreflightFailure")
	})
	t.Run("missing Origin", func(t *testing.T) {
		preflight(t, "", "GET").want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
}

func TestTable_QueryTables(t *testing.T) {
	cover(t, storage.Table, "Query Tables")
	env := newTableEnv(t)
	for _, n := range []string{"alpha", "beta", "gamma"} {
		env.table(t, n)
	}
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/Tables?$top=2", nil, "")
		r.want(t, http.StatusOK, "")
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json;odata=minimalmetadata") {
			t.Errorf("Content-Type %q", ct)
		}
		m := r.json(t)
		if !strings.HasSuffix(m["odata.metadata"].(string), "$metadata#Tables") {
			t.Errorf("odata.metadata %v", m["odata.metadata"])
		}
		if v := m["value"].([]any); len(v) != 2 || v[0].(map[string]any)["TableName"] != "alpha" {
			t.Errorf("value %v", v)
		}
		next := r.header.Get("x-ms-continuation-NextTableName")
		if next == "" {
			t.Fatal("no x-ms-continuation-NextTableName with more tables left")
		}
		r = env.do(t, http.MethodGet, "/Tables?$top=2&NextTableName="+next, nil, "")
		if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["TableName"] != "gamma" {
			t.Errorf("second page %v", v)
		}
	})
	t.Run("filter", func(t *testing.T) {
		p := env.svc.NewListTablesPager(&aztables.ListTablesOptions{Filter: to.Ptr("TableName eq 'beta'")})
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Tables) != 1 || *page.Tables[0].Name != "beta" {
			t.Errorf("filtered: %+v", page.Tables)
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		// A filter that is no Boolean expression.
		env.do(t, http.MethodGet, "/Tables?$filter=(1)", nil, "").want(t, http.StatusBadRequest, "InvalidInput")
	})
}

func TestTable_CreateTable(t *testing.T) {
	cover(t, storage.Table, "Create Table")
	env := newTableEnv(t)
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodPost, "/Tables", nil, `{"TableName":"Orders"}`)
		r.want(t, http.StatusCreated, "")
		if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/Tables('Orders')") {
			t.Errorf("Location %q", loc)
		}
		m := r.json(t)
		if m["TableName"] != "Orders" || !strings.HasSuffix(m["odata.metadata"].(string), "$metadata#Tables/@Element") {
			t.Errorf("body %v", m)
		}
	})
	t.Run("return-no-content", func(t *testing.T) {
		r := env.do(t, http.MethodPost, "/Tables", map[string]string{"Prefer": "return-no-content"}, `{"TableName":"Quiet"}`)
		r.want(t, http.StatusNoContent, "")
		if r.header.Get("Preference-Applied") != "return-no-content" {
			t.Errorf("Preference-Applied %q", r.header.Get("Preference-Applied"))
		}
	})
	t.Run("trailing slash", func(t *testing.T) {
		// Some clients post to .../Tables/; the service takes it.
		env.do(t, http.MethodPost, "/Tables/", nil, `{"TableName":"Slashed"}`).want(t, http.StatusCreated, "")
	})
	t.Run("TableAlreadyExists", func(t *testing.T) {
		// Table names compare regardless of case.
		_, err := env.svc.CreateTable(context.Background(), "ORDERS", nil)
		wantErr(t, err, http.StatusConflict, "TableAlreadyExists")
	})
	t.Run("account SAS with w", func(t *testing.T) {
		// As Create Queue: w on containers, per the reference; c as the emulator.
		cred, err := aztables.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
		if err != nil {
			t.Fatal(err)
		}
		for _, perms := range []string{"w", "c"} {
			qp, err := aztables.AccountSASSignatureValues{Protocol: aztables.SASProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
				Permissions: perms, Services: "t", ResourceTypes: "sco"}.Sign(cred)
			if err != nil {
				t.Fatal(err)
			}
			c, err := aztables.NewServiceClientWithNoCredential(env.endpoint+"/?"+qp.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateTable(context.Background(), "BySas"+perms, nil); err != nil {
				t.Errorf("create with an account SAS of %s: %v", perms, err)
			}
		}
	})
	t.Run("InvalidResourceName", func(t *testing.T) {
		for _, bad := range []string{"ab", "1abc", "has-dash", "tables", strings.Repeat("a", 64)} {
			_, err := env.svc.CreateTable(context.Background(), bad, nil)
			wantErr(t, err, http.StatusBadRequest, "InvalidResourceName")
		}
	})
}

func TestTable_DeleteTable(t *testing.T) {
	cover(t, storage.Table, "Delete Table")
	env := newTableEnv(t)
	env.table(t, "doomed")
	t.Run("success", func(t *testing.T) {
		env.do(t, http.MethodDelete, "/Tables('doomed')", nil, "").want(t, http.StatusNoContent, "")
		_, err := env.svc.NewClient("doomed").AddEntity(context.Background(), []byte(`{"PartitionKey":"p","RowKey":"r"}`), nil)
		wantErr(t, err, http.StatusNotFound, "TableNotFound")
	})
	t.Run("ResourceNotFound", func(t *testing.T) {
		// Azure answers a missing table's deletion with ResourceNotFound, not
		// the TableNotFound that entity operations get.
		_, err := env.svc.DeleteTable(context.Background(), "doomed", nil)
		wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	})
}

func TestTable_GetTableACL(t *testing.T) {
	cover(t, storage.Table, "Get Table ACL")
	env := newTableEnv(t)
	tc := env.table(t, "guarded")
	t.Run("success", func(t *testing.T) {
		got, err := tc.GetAccessPolicy(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.SignedIdentifiers) != 0 {
			t.Errorf("a new table has policies: %+v", got.SignedIdentifiers)
		}
		r := env.do(t, http.MethodGet, "/guarded?comp=acl", nil, "")
		r.want(t, http.StatusOK, "")
		if !strings.Contains(string(r.body), "<SignedIdentifiers") {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("TableNotFound", func(t *testing.T) {
		_, err := env.svc.NewClient("absent").GetAccessPolicy(context.Background(), nil)
		wantErr(t, err, http.StatusNotFound, "TableNotFound")
	})
}

func TestTable_SetTableACL(t *testing.T) {
	cover(t, storage.Table, "Set Table ACL")
	env := newTableEnv(t)
	tc := env.table(t, "guarded")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		ids := []*aztables.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &aztables.AccessPolicy{Permission: to.Ptr("r")}}}
		if _, err := tc.SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: ids}); err != nil {
			t.Fatal(err)
		}
		got, err := tc.GetAccessPolicy(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.SignedIdentifiers) != 1 || *got.SignedIdentifiers[0].ID != "readers" || *got.SignedIdentifiers[0].AccessPolicy.Permission != "r" {
			t.Errorf("policies %+v", got.SignedIdentifiers)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		// At most five stored access policies per table.
		// (The Go SDK refuses six before sending; raw XML.)
		var ids strings.Builder
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			ids.WriteString("<SignedIdentifier><Id>" + id + "</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier>")
		}
		r := env.do(t, http.MethodPut, "/guarded?comp=acl", map[string]string{"Content-Type": "application/xml"}, "<SignedIdentifiers>"+ids.String()+"</SignedIdentifiers>")
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
		if got, err := tc.GetAccessPolicy(ctx, nil); err != nil || len(got.SignedIdentifiers) != 1 {
			t.Errorf("after a refused Set Table ACL: %+v, %v", got.SignedIdentifiers, err)
		}
	})
	t.Run("TableNotFound", func(t *testing.T) {
		_, err := env.svc.NewClient("absent").SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{})
		wantErr(t, err, http.StatusNotFound, "TableNotFound")
	})
}
