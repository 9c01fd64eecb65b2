package conformance

// Blob service: Get User Delegation Key, and the user delegation SAS its
// keys sign.

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
)

// tokenCredential hands the SDK a fixed bearer token.
type tokenCredential string

func (c tokenCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

var principal = storage.Principal{ObjectID: "11111111-2222-3333-4444-555555555555", TenantID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}

// hostStyle returns the blob endpoint of env addressed as Azure addresses
// it (ACCOUNT.blob.core.windows.net), and client options that reach env
// under that name. The SDK takes the account a user delegation SAS signs
// for from the host's first label, so a SAS needs a host-style address.
func (e *blobEnv) hostStyle(t *testing.T) (string, policy.ClientOptions) {
	t.Helper()
	u, err := url.Parse(e.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return "http://" + storage.DevAccount + ".blob.core.windows.net:" + u.Port() + "/", policy.ClientOptions{
		Transport:                       &http.Client{Transport: tr},
		Retry:                           policy.RetryOptions{MaxRetries: -1},
		InsecureAllowCredentialWithHTTP: true,
	}
}

// keyInfo is a KeyInfo valid from now for d.
func keyInfo(d time.Duration) service.KeyInfo {
	now := time.Now().UTC()
	return service.KeyInfo{Start: to.Ptr(now.Add(-time.Minute).Format(sas.TimeFormat)), Expiry: to.Ptr(now.Add(d).Format(sas.TimeFormat))}
}

func TestBlob_GetUserDelegationKey(t *testing.T) {
	cover(t, storage.Blob, "Get User Delegation Key")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	env.upload(t, cc, "b", "delegated", nil)
	ctx := context.Background()
	endpoint, opts := env.hostStyle(t)
	token := storage.BearerToken(storage.DevAccount, devKey, principal, time.Now().Add(time.Hour))
	oauth, err := service.NewClient(endpoint, tokenCredential(token), &service.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	var udc *service.UserDelegationCredential
	t.Run("success", func(t *testing.T) {
		var err error
		udc, err = oauth.GetUserDelegationCredential(ctx, keyInfo(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("answer", func(t *testing.T) {
		expiry := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
		r := rawBearer(t, endpoint, opts, token, `<?xml version="1.0" encoding="utf-8"?><KeyInfo><Expiry>`+expiry.Format(time.RFC3339)+`</Expiry></KeyInfo>`)
		r.want(t, http.StatusOK, "")
		var k struct {
			SignedOid, SignedTid, SignedExpiry, SignedService, Value string
		}
		if err := xml.Unmarshal(r.body, &k); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		v, err := base64.StdEncoding.DecodeString(k.Value)
		if k.SignedOid != principal.ObjectID || k.SignedTid != principal.TenantID || k.SignedService != "b" ||
			k.SignedExpiry != expiry.Format(time.RFC3339) || err != nil || len(v) != 32 {
			t.Errorf("answer %s", r.body)
		}
	})
	t.Run("InvalidXmlNodeValue", func(t *testing.T) {
		// At most seven days ahead, as Azure; Azure names the refused value
		// in XmlNodeName and XmlNodeValue.
		_, err := oauth.GetUserDelegationCredential(ctx, keyInfo(8*24*time.Hour), nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidXmlNodeValue")
		_, err = oauth.GetUserDelegationCredential(ctx, service.KeyInfo{Start: to.Ptr("2030-01-01T00:00:00Z"), Expiry: to.Ptr("yesterday")}, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidXmlNodeValue")
		// A start after the expiry.
		_, err = oauth.GetUserDelegationCredential(ctx, service.KeyInfo{Start: to.Ptr(time.Now().Add(2 * time.Hour).UTC().Format(sas.TimeFormat)),
			Expiry: to.Ptr(time.Now().Add(time.Hour).UTC().Format(sas.TimeFormat))}, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidXmlNodeValue")
		r := rawBearer(t, endpoint, opts, token, `<KeyInfo><Start>`)
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
		r = rawBearer(t, endpoint, opts, token, `<KeyInfo></KeyInfo>`)
		r.want(t, http.StatusBadRequest, "MissingRequiredXmlNode")
		r = rawBearer(t, endpoint, opts, token, `<KeyInfo><Expiry>`+strings.Repeat("x", 70<<10)+`</Expiry></KeyInfo>`)
		r.want(t, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
	})
	t.Run("AuthenticationFailed", func(t *testing.T) {
		// Azure takes only OAuth for this operation: Shared Key is refused
		// with "Only authentication scheme Bearer is supported".
		_, err := env.svc.GetUserDelegationCredential(ctx, keyInfo(time.Hour), nil)
		wantErr(t, err, http.StatusForbidden, "AuthenticationFailed")
		if !strings.Contains(err.Error(), "Only authentication scheme Bearer is supported") {
			t.Errorf("detail: %v", err)
		}
	})
	t.Run("InvalidAuthenticationInfo", func(t *testing.T) {
		for name, tok := range map[string]string{
			"other key": storage.BearerToken(storage.DevAccount, []byte("not the key"), principal, time.Now().Add(time.Hour)),
			"expired":   storage.BearerToken(storage.DevAccount, devKey, principal, time.Now().Add(-time.Hour)),
			"alg none":  "eyJhbGciOiJub25lIn0." + strings.Split(token, ".")[1] + ".",
			"garbage":   "x.y.z",
		} {
			c, err := service.NewClient(endpoint, tokenCredential(tok), &service.ClientOptions{ClientOptions: opts})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetUserDelegationCredential(ctx, keyInfo(time.Hour), nil)
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || re.ErrorCode != "InvalidAuthenticationInfo" {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("bearer grants nothing else", func(t *testing.T) {
		// The token's principal has no data role.
		_, err := oauth.NewContainerClient("box").NewBlobClient("b").GetProperties(ctx, nil)
		wantErr(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
	if udc == nil {
		t.Fatal("no user delegation key")
	}
	sasURL := func(t *testing.T, blobName, perms string, key *service.UserDelegationCredential) string {
		t.Helper()
		qp, err := sas.BlobSignatureValues{
			Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
			Permissions: perms, ContainerName: "box", BlobName: blobName,
		}.SignWithUserDelegation(key)
		if err != nil {
			t.Fatal(err)
		}
		return endpoint + "box/" + blobName + "?" + qp.Encode()
	}
	t.Run("user delegation SAS", func(t *testing.T) {
		bc, err := blob.NewClientWithNoCredential(sasURL(t, "b", "r", udc), &blob.ClientOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := bc.DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "delegated" {
			t.Errorf("read %q through the SAS", got)
		}
		// Read only: a write is refused and changes nothing.
		wc, err := blockblob.NewClientWithNoCredential(sasURL(t, "b", "r", udc), &blockblob.ClientOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		_, err = wc.Upload(ctx, body("overwritten"), nil)
		wantErr(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
		// A SAS with write may write.
		wc, err = blockblob.NewClientWithNoCredential(sasURL(t, "new", "cw", udc), &blockblob.ClientOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wc.Upload(ctx, body("written"), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("user delegation SAS refused", func(t *testing.T) {
		get := func(u string) error {
			bc, err := blob.NewClientWithNoCredential(u, &blob.ClientOptions{ClientOptions: opts})
			if err != nil {
				t.Fatal(err)
			}
			_, err = bc.GetProperties(ctx, nil)
			return err
		}
		// Signed for another blob.
		u := strings.Replace(sasURL(t, "other", "r", udc), "/box/other?", "/box/b?", 1)
		wantErr(t, get(u), http.StatusForbidden, "AuthenticationFailed")
		// A key whose fields were changed (a longer expiry) signs nothing.
		q, _ := url.Parse(sasURL(t, "b", "r", udc))
		v := q.Query()
		v.Set("ske", time.Now().Add(30*24*time.Hour).UTC().Format(sas.TimeFormat))
		q.RawQuery = v.Encode()
		wantErr(t, get(q.String()), http.StatusForbidden, "AuthenticationFailed")
		// A signature under a key the service did not derive.
		v = q.Query()
		v.Set("sig", base64.StdEncoding.EncodeToString(make([]byte, 32)))
		q.RawQuery = v.Encode()
		wantErr(t, get(q.String()), http.StatusForbidden, "AuthenticationFailed")
	})
}

// rawBearer posts a Get User Delegation Key with body and the bearer token.
func rawBearer(t *testing.T, endpoint string, opts policy.ClientOptions, token, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint+"?restype=service&comp=userdelegationkey", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("x-ms-version", "2025-11-05")
	resp, err := opts.Transport.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}
