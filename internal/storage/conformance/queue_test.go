package conformance

// Queue service: operations on the account and on queues. Message
// operations are in queue_message_test.go.
//
// Not reachable here, so not tested: QueueBeingDeleted (a queue is gone
// the moment Delete Queue answers), QueueDisabled (no administrator
// disables queues) and QueueNotEmpty (Delete Queue deletes a queue with
// its messages, as Azure does).

import (
	"context"
	"encoding/xml"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/sas"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/queue"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// queueEnv is a queue service of its own, served on loopback through the
// storage front end, with an SDK client for the development account.
type queueEnv struct {
	endpoint string
	svc      *azqueue.ServiceClient
}

// queueClientOptions are fresh options for each client: the SDK adds a
// client's credential policy to the options it is given.
func queueClientOptions() *azqueue.ClientOptions {
	return &azqueue.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry:                           policy.RetryOptions{MaxRetries: -1},
		InsecureAllowCredentialWithHTTP: true,
	}}
}

func newQueueEnv(t *testing.T) *queueEnv {
	t.Helper()
	s, err := queue.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	endpoint := storagetest.Serve(t, storage.Queue, s)
	return &queueEnv{endpoint: endpoint, svc: queueServiceClient(t, endpoint)}
}

// queueServiceClient is an SDK client for endpoint signing with the
// development account's key.
func queueServiceClient(t *testing.T, endpoint string) *azqueue.ServiceClient {
	t.Helper()
	cred, err := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(endpoint, cred, queueClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// queue creates a queue and returns its client.
func (e *queueEnv) queue(t *testing.T, name string) *azqueue.QueueClient {
	t.Helper()
	q := e.svc.NewQueueClient(name)
	if _, err := q.Create(context.Background(), nil); err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	return q
}

// do sends a signed raw request; a body is XML.
func (e *queueEnv) do(t *testing.T, method, path string, hdr map[string]string, body string) response {
	t.Helper()
	h := http.Header{}
	h.Set("x-ms-version", "2018-03-28")
	if body != "" {
		h.Set("Content-Type", "application/xml")
	}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return do(t, storage.Queue, e.endpoint, method, path, h, []byte(body))
}

// accountSAS is an SDK client for the service under an account SAS with
// permissions perms on all resource types.
func (e *queueEnv) accountSAS(t *testing.T, perms sas.AccountPermissions) *azqueue.ServiceClient {
	t.Helper()
	cred, err := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.AccountSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions:   perms.String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azqueue.NewServiceClientWithNoCredential(e.endpoint+"/?"+qp.Encode(), queueClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// xmlDoc decodes an XML answer into v.
func (r response) xmlDoc(t *testing.T, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		t.Errorf("Content-Type %q, want application/xml", ct)
	}
	if err := xml.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer is not the XML expected: %v: %.300s", err, r.body)
	}
}

func TestQueue_SetQueueServiceProperties(t *testing.T) {
	cover(t, storage.Queue, "Set Queue Service Properties")
	env := newQueueEnv(t)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		_, err := env.svc.SetProperties(ctx, &azqueue.SetPropertiesOptions{
			CORS: []*azqueue.CORSRule{{
				AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,PUT"),
				AllowedHeaders: to.Ptr("x-ms-*"), ExposedHeaders: to.Ptr("x-ms-request-id"),
				MaxAgeInSeconds: to.Ptr[int32](60),
			}},
			Logging: &azqueue.Logging{
				Read: to.Ptr(true), Write: to.Ptr(false), Delete: to.Ptr(false),
				RetentionPolicy: &azqueue.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](7)},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := env.svc.GetServiceProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.CORS) != 1 || *got.CORS[0].AllowedOrigins != "https://example.com" || *got.CORS[0].MaxAgeInSeconds != 60 {
			t.Errorf("CORS rules after set: %+v", got.CORS)
		}
		if got.Logging == nil || !*got.Logging.Read || *got.Logging.RetentionPolicy.Days != 7 {
			t.Errorf("logging after set: %+v", got.Logging)
		}
	})
	t.Run("elements left out keep their settings", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", nil,
			`<StorageServiceProperties><HourMetrics><Version>1.0</Version><Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics></StorageServiceProperties>`)
		r.want(t, http.StatusAccepted, "")
		got, err := env.svc.GetServiceProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !*got.HourMetrics.Enabled || len(got.CORS) != 1 || !*got.Logging.Read {
			t.Errorf("after setting HourMetrics alone: hour %+v, CORS %+v, logging %+v", got.HourMetrics, got.CORS, got.Logging)
		}
	})
	t.Run("answer", func(t *testing.T) {
		// 202 Accepted with no body.
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", nil,
			`<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><Cors/></StorageServiceProperties>`)
		r.want(t, http.StatusAccepted, "")
		if r.header.Get("x-ms-request-id") == "" || len(r.body) != 0 {
			t.Errorf("answer headers %v body %q", r.header, r.body)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		env.do(t, http.MethodPut, "/?restype=service&comp=properties", nil, `<StorageServiceProperties><Cors>`).
			want(t, http.StatusBadRequest, "InvalidXmlDocument")
		// At most five CORS rules.
		six := strings.Repeat(`<CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods><AllowedHeaders></AllowedHeaders><ExposedHeaders></ExposedHeaders><MaxAgeInSeconds>1</MaxAgeInSeconds></CorsRule>`, 6)
		env.do(t, http.MethodPut, "/?restype=service&comp=properties", nil, `<StorageServiceProperties><Cors>`+six+`</Cors></StorageServiceProperties>`).
			want(t, http.StatusBadRequest, "InvalidXmlDocument")
		// A method CORS does not know.
		env.do(t, http.MethodPut, "/?restype=service&comp=properties", nil,
			`<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>FETCH</AllowedMethods><AllowedHeaders></AllowedHeaders><ExposedHeaders></ExposedHeaders><MaxAgeInSeconds>1</MaxAgeInSeconds></CorsRule></Cors></StorageServiceProperties>`).
			want(t, http.StatusBadRequest, "InvalidXmlDocument")
		got, err := env.svc.GetServiceProperties(ctx, nil)
		if err != nil || len(got.CORS) != 0 {
			t.Errorf("a refused set changed the rules: %+v, %v", got.CORS, err)
		}
	})
}

func TestQueue_GetQueueServiceProperties(t *testing.T) {
	cover(t, storage.Queue, "Get Queue Service Properties")
	env := newQueueEnv(t)
	t.Run("success", func(t *testing.T) {
		// An account that never set them answers the defaults: everything off.
		got, err := env.svc.GetServiceProperties(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Logging == nil || *got.Logging.Read || got.HourMetrics == nil || *got.HourMetrics.Enabled || len(got.CORS) != 0 {
			t.Errorf("default properties: %+v", got.StorageServiceProperties)
		}
	})
	t.Run("answer", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/?restype=service&comp=properties", nil, "")
		r.want(t, http.StatusOK, "")
		var doc struct {
			XMLName       xml.Name  `xml:"StorageServiceProperties"`
			Logging       *struct{} `xml:"Logging"`
			HourMetrics   *struct{} `xml:"HourMetrics"`
			MinuteMetrics *struct{} `xml:"MinuteMetrics"`
			Cors          *struct{} `xml:"Cors"`
		}
		r.xmlDoc(t, &doc)
		if doc.Logging == nil || doc.HourMetrics == nil || doc.MinuteMetrics == nil || doc.Cors == nil {
			t.Errorf("body lacks an element: %s", r.body)
		}
	})
}

func TestQueue_PreflightQueueRequest(t *testing.T) {
	cover(t, storage.Queue, "Preflight Queue Request")
	env := newQueueEnv(t)
	preflight := func(t *testing.T, origin, method string) response {
		return preflightRequest(t, env.endpoint+"/jobs/messages", origin, method, "x-ms-version")
	}
	t.Run("CorsPreflightFailure", func(t *testing.T) {
		// No rules yet: 403.
		preflight(t, "https://example.com", "GET").want(t, http.StatusForbidden, "CorsPreflightFailure")
	})
	_, err := env.svc.SetProperties(context.Background(), &azqueue.SetPropertiesOptions{CORS: []*azqueue.CORSRule{{
		AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,POST"),
		AllowedHeaders: to.Ptr("x-ms-*"), ExposedHeaders: to.Ptr("x-ms-request-id"), MaxAgeInSeconds: to.Ptr[int32](30),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		r := preflight(t, "https://example.com", "POST")
		r.want(t, http.StatusOK, "")
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "POST",
			"Access-Control-Allow-Headers": "x-ms-version", "Access-Control-Max-Age": "30",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("CORS headers on the request itself", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/?comp=list", map[string]string{"Origin": "https://example.com"}, "")
		r.want(t, http.StatusOK, "")
		if r.header.Get("Access-Control-Allow-Origin") != "https://example.com" || r.header.Get("Access-Control-Expose-Headers") != "x-ms-request-id" {
			t.Errorf("CORS headers: %v", r.header)
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

func TestQueue_GetQueueServiceStats(t *testing.T) {
	cover(t, storage.Queue, "Get Queue Service Stats")
	env := newQueueEnv(t)
	ctx := context.Background()
	// The reference serves it on the secondary location's endpoint, the
	// account name with -secondary; read-access geo-redundant clients call
	// it there, signing with the account's own name and key. Weft keeps
	// one copy, always live, and answers it on the primary endpoint too.
	secondary := queueServiceClient(t, env.endpoint+"-secondary")
	t.Run("success", func(t *testing.T) {
		for name, c := range map[string]*azqueue.ServiceClient{"secondary": secondary, "primary": env.svc} {
			got, err := c.GetStatistics(ctx, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.GeoReplication == nil || got.GeoReplication.Status == nil || *got.GeoReplication.Status != azqueue.GeoReplicationStatusLive || got.GeoReplication.LastSyncTime == nil {
				t.Errorf("%s: stats %+v", name, got.GeoReplication)
			}
		}
	})
	t.Run("secondary reads", func(t *testing.T) {
		env.queue(t, "replicated")
		page, err := secondary.NewListQueuesPager(nil).NextPage(ctx)
		if err != nil || len(page.Queues) != 1 {
			t.Fatalf("list on the secondary: %+v, %v", page.Queues, err)
		}
	})
	t.Run("InsufficientAccountPermissions", func(t *testing.T) {
		// The secondary location is read-only.
		_, err := secondary.CreateQueue(ctx, "written", nil)
		wantErr(t, err, http.StatusForbidden, "InsufficientAccountPermissions")
		if _, err := env.svc.NewQueueClient("written").GetProperties(ctx, nil); err == nil {
			t.Error("a write to the secondary created the queue")
		}
	})
}

func TestQueue_ListQueues(t *testing.T) {
	cover(t, storage.Queue, "List Queues")
	env := newQueueEnv(t)
	ctx := context.Background()
	for _, n := range []string{"alpha", "beta", "gamma"} {
		env.queue(t, n)
	}
	if _, err := env.svc.NewQueueClient("beta").SetMetadata(ctx, &azqueue.SetMetadataOptions{Metadata: map[string]*string{"Owner": to.Ptr("ops")}}); err != nil {
		t.Fatal(err)
	}
	type page struct {
		XMLName         xml.Name `xml:"EnumerationResults"`
		ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
		MaxResults      int      `xml:"MaxResults"`
		Queues          []string `xml:"Queues>Queue>Name"`
		NextMarker      string   `xml:"NextMarker"`
	}
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/?comp=list&maxresults=2", nil, "")
		r.want(t, http.StatusOK, "")
		var p page
		r.xmlDoc(t, &p)
		if p.ServiceEndpoint == "" || p.MaxResults != 2 || strings.Join(p.Queues, ",") != "alpha,beta" || p.NextMarker == "" {
			t.Fatalf("first page %+v", p)
		}
		r = env.do(t, http.MethodGet, "/?comp=list&maxresults=2&marker="+p.NextMarker, nil, "")
		p = page{}
		r.xmlDoc(t, &p)
		if strings.Join(p.Queues, ",") != "gamma" || p.NextMarker != "" {
			t.Errorf("second page %+v", p)
		}
	})
	t.Run("prefix and metadata", func(t *testing.T) {
		got, err := env.svc.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: to.Ptr("b"), Include: azqueue.ListQueuesInclude{Metadata: true}}).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Queues) != 1 || *got.Queues[0].Name != "beta" || got.Queues[0].Metadata["owner"] == nil && got.Queues[0].Metadata["Owner"] == nil {
			t.Errorf("queues %+v", got.Queues)
		}
	})
	t.Run("OutOfRangeQueryParameterValue", func(t *testing.T) {
		env.do(t, http.MethodGet, "/?comp=list&maxresults=0", nil, "").want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
	})
	t.Run("InvalidQueryParameterValue", func(t *testing.T) {
		env.do(t, http.MethodGet, "/?comp=list&maxresults=many", nil, "").want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
}

func TestQueue_CreateQueue(t *testing.T) {
	cover(t, storage.Queue, "Create Queue")
	env := newQueueEnv(t)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/orders", map[string]string{"x-ms-meta-owner": "ops"}, "")
		r.want(t, http.StatusCreated, "")
		if len(r.body) != 0 {
			t.Errorf("body %q", r.body)
		}
	})
	t.Run("same metadata again", func(t *testing.T) {
		// Creating a queue that exists with the same metadata is 204.
		env.do(t, http.MethodPut, "/orders", map[string]string{"x-ms-meta-owner": "ops"}, "").want(t, http.StatusNoContent, "")
	})
	t.Run("QueueAlreadyExists", func(t *testing.T) {
		_, err := env.svc.CreateQueue(ctx, "orders", &azqueue.CreateOptions{Metadata: map[string]*string{"owner": to.Ptr("dev")}})
		wantErr(t, err, http.StatusConflict, "QueueAlreadyExists")
	})
	t.Run("InvalidResourceName", func(t *testing.T) {
		for _, bad := range []string{"Upper", "-dash", "dash-", "two--dashes", "under_score", "dot.ted"} {
			_, err := env.svc.CreateQueue(ctx, bad, nil)
			wantErr(t, err, http.StatusBadRequest, "InvalidResourceName")
		}
	})
	t.Run("OutOfRangeInput", func(t *testing.T) {
		// A name of the wrong length: OutOfRangeInput, not InvalidResourceName.
		for _, bad := range []string{"ab", strings.Repeat("a", 64)} {
			_, err := env.svc.CreateQueue(ctx, bad, nil)
			wantErr(t, err, http.StatusBadRequest, "OutOfRangeInput")
		}
	})
	t.Run("UnsupportedHttpVerb", func(t *testing.T) {
		// A method the queue does not answer is 405, as the common error
		// codes have it (and as the table service answers).
		env.do(t, http.MethodPost, "/orders", nil, "").want(t, http.StatusMethodNotAllowed, "UnsupportedHttpVerb")
	})
	t.Run("InvalidMetadata", func(t *testing.T) {
		env.do(t, http.MethodPut, "/badmeta", map[string]string{"x-ms-meta-1st": "x"}, "").want(t, http.StatusBadRequest, "InvalidMetadata")
	})
	t.Run("account SAS with w", func(t *testing.T) {
		// Create Queue needs w on containers under an account SAS, as the
		// reference's account SAS table says; c (which the reference keeps
		// for blobs and files) is taken too, as the emulator takes it.
		for perms, name := range map[sas.AccountPermissions]string{{Write: true}: "bysasw", {Create: true}: "bysasc"} {
			if _, err := env.accountSAS(t, perms).CreateQueue(ctx, name, nil); err != nil {
				t.Errorf("create with an account SAS of %s: %v", perms.String(), err)
			}
		}
		_, err := env.accountSAS(t, sas.AccountPermissions{Read: true, List: true}).CreateQueue(ctx, "bysasr", nil)
		wantErr(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
}

func TestQueue_DeleteQueue(t *testing.T) {
	cover(t, storage.Queue, "Delete Queue")
	env := newQueueEnv(t)
	q := env.queue(t, "doomed")
	if _, err := q.EnqueueMessage(context.Background(), "left behind", nil); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		// A queue with messages is deleted with them.
		env.do(t, http.MethodDelete, "/doomed", nil, "").want(t, http.StatusNoContent, "")
		_, err := q.GetProperties(context.Background(), nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.DeleteQueue(context.Background(), "doomed", nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_GetQueueMetadata(t *testing.T) {
	cover(t, storage.Queue, "Get Queue Metadata")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.svc.NewQueueClient("described")
	if _, err := q.Create(ctx, &azqueue.CreateOptions{Metadata: map[string]*string{"Owner": to.Ptr("ops")}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := q.EnqueueMessage(ctx, "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("success", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r := env.do(t, m, "/described?comp=metadata", nil, "")
			r.want(t, http.StatusOK, "")
			if r.header.Get("x-ms-meta-Owner") != "ops" || r.header.Get("x-ms-approximate-messages-count") != "2" || len(r.body) != 0 {
				t.Errorf("%s: headers %v body %q", m, r.header, r.body)
			}
		}
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_SetQueueMetadata(t *testing.T) {
	cover(t, storage.Queue, "Set Queue Metadata")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.svc.NewQueueClient("labelled")
	if _, err := q.Create(ctx, &azqueue.CreateOptions{Metadata: map[string]*string{"old": to.Ptr("1")}}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		// The metadata given replaces all there was.
		env.do(t, http.MethodPut, "/labelled?comp=metadata", map[string]string{"x-ms-meta-new": "2"}, "").want(t, http.StatusNoContent, "")
		got, err := q.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Metadata) != 1 || got.Metadata["new"] == nil && got.Metadata["New"] == nil {
			t.Errorf("metadata %v", got.Metadata)
		}
	})
	t.Run("InvalidMetadata", func(t *testing.T) {
		env.do(t, http.MethodPut, "/labelled?comp=metadata", map[string]string{"x-ms-meta-a-b": "x"}, "").want(t, http.StatusBadRequest, "InvalidMetadata")
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").SetMetadata(ctx, &azqueue.SetMetadataOptions{Metadata: map[string]*string{"a": to.Ptr("b")}})
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_GetQueueACL(t *testing.T) {
	cover(t, storage.Queue, "Get Queue ACL")
	env := newQueueEnv(t)
	q := env.queue(t, "guarded")
	t.Run("success", func(t *testing.T) {
		got, err := q.GetAccessPolicy(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.SignedIdentifiers) != 0 {
			t.Errorf("a new queue has policies: %+v", got.SignedIdentifiers)
		}
		r := env.do(t, http.MethodGet, "/guarded?comp=acl", nil, "")
		r.want(t, http.StatusOK, "")
		var doc struct {
			XMLName xml.Name `xml:"SignedIdentifiers"`
		}
		r.xmlDoc(t, &doc)
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").GetAccessPolicy(context.Background(), nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_SetQueueACL(t *testing.T) {
	cover(t, storage.Queue, "Set Queue ACL")
	env := newQueueEnv(t)
	q := env.queue(t, "guarded")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		start := time.Now().UTC().Truncate(time.Second)
		ids := []*azqueue.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &azqueue.AccessPolicy{
			Permission: to.Ptr("rp"), Start: to.Ptr(start), Expiry: to.Ptr(start.Add(time.Hour)),
		}}}
		if _, err := q.SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: ids}); err != nil {
			t.Fatal(err)
		}
		got, err := q.GetAccessPolicy(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.SignedIdentifiers) != 1 || *got.SignedIdentifiers[0].ID != "readers" || *got.SignedIdentifiers[0].AccessPolicy.Permission != "rp" {
			t.Errorf("policies %+v", got.SignedIdentifiers)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		// At most five stored access policies per queue.
		var ids strings.Builder
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			ids.WriteString("<SignedIdentifier><Id>" + id + "</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier>")
		}
		env.do(t, http.MethodPut, "/guarded?comp=acl", nil, "<SignedIdentifiers>"+ids.String()+"</SignedIdentifiers>").
			want(t, http.StatusBadRequest, "InvalidXmlDocument")
		env.do(t, http.MethodPut, "/guarded?comp=acl", nil, "<SignedIdentifiers><SignedIdentifier>").
			want(t, http.StatusBadRequest, "InvalidXmlDocument")
		if got, err := q.GetAccessPolicy(ctx, nil); err != nil || len(got.SignedIdentifiers) != 1 {
			t.Errorf("after a refused Set Queue ACL: %+v, %v", got.SignedIdentifiers, err)
		}
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{})
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}
