package storage_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// A user delegation SAS (skoid, sktid, ...) whose signature is not under
// the key its fields name is refused, 403 AuthenticationFailed; queue and
// table take none (Azure has them for blobs only). The blob service's
// accepted ones are in the conformance suite (TestBlob_GetUserDelegationKey).
func TestUserDelegationSASRefused(t *testing.T) {
	for _, svc := range []storage.Service{storage.Blob, storage.Queue, storage.Table} {
		ep := storagetest.Serve(t, svc, &recorder{})
		q := url.Values{
			"sv": {"2022-11-02"}, "sp": {"r"}, "sr": {"c"}, "se": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
			"skoid": {"00000000-0000-0000-0000-000000000001"}, "sktid": {"00000000-0000-0000-0000-000000000002"},
			"skt": {time.Now().UTC().Format(time.RFC3339)}, "ske": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
			"sks": {string(svc)[:1]}, "skv": {"2022-11-02"}, "sig": {"AAAA"},
		}
		req, _ := http.NewRequest(http.MethodGet, ep+"/things?"+q.Encode(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The table service's JSON errors carry no detail, as Azure's do not.
		want := "Signature did not match"
		if svc != storage.Blob {
			want = "valid for the blob service only"
		}
		detail := svc == storage.Table || strings.Contains(string(body), want)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" || !detail {
			t.Errorf("%s: %s %s %s", svc, resp.Status, resp.Header.Get("x-ms-error-code"), body)
		}
	}
}
