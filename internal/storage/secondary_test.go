package storage_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/sas"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// ACCOUNT-secondary, host-style or path-style, is the account itself,
// authenticated with its own name and key (Shared Key or SAS), and
// read-only.
func TestSecondaryLocation(t *testing.T) {
	h := &recorder{}
	ep := storagetest.Serve(t, storage.Queue, h)
	u, _ := url.Parse(ep)
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)

	req, _ := http.NewRequest(http.MethodGet, "http://"+u.Host+"/?restype=service&comp=stats", nil)
	req.Host = storage.DevAccount + "-secondary.queue.weft.local:" + u.Port()
	storage.SignSharedKey(req, storage.Queue, storage.DevAccount, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := h.request(); resp.StatusCode != http.StatusOK || r.Account != storage.DevAccount || r.Path != "" || r.Auth.Kind != storage.SharedKey {
		t.Fatalf("host-style secondary: %s, request %+v", resp.Status, r)
	}

	cred, err := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := qsas.QueueSignatureValues{Protocol: qsas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: "r", QueueName: "jobs"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	if st, code, _ := get(t, ep+"-secondary/jobs/messages?peekonly=true&"+qp.Encode(), nil); st != http.StatusOK {
		t.Fatalf("service SAS on the secondary: %d %s", st, code)
	}
	if r := h.request(); r.Account != storage.DevAccount || r.Path != "jobs/messages" || r.Auth.Kind != storage.ServiceSAS {
		t.Fatalf("service SAS on the secondary: request %+v", r)
	}

	before := h.request()
	req, _ = http.NewRequest(http.MethodPut, ep+"-secondary/jobs", nil)
	storage.SignSharedKey(req, storage.Queue, storage.DevAccount, key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-error-code") != "InsufficientAccountPermissions" || h.request() != before {
		t.Errorf("a write to the secondary: %s %s", resp.Status, resp.Header.Get("x-ms-error-code"))
	}
}
