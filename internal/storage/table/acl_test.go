package table

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// TestStoredAccessPolicy sets a table's policies with the SDK, reads with a
// table SAS that names one, and revokes it by removing the policy.
func TestStoredAccessPolicy(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "Policed")
	if _, err := tc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "r"}), nil); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	acl := []*aztables.SignedIdentifier{
		{ID: to.Ptr("readers"), AccessPolicy: &aztables.AccessPolicy{Permission: to.Ptr("r"), Expiry: &expiry}},
		{ID: to.Ptr("writers"), AccessPolicy: &aztables.AccessPolicy{Permission: to.Ptr("raud"), Start: to.Ptr(expiry.Add(-2 * time.Hour)), Expiry: &expiry}},
	}
	if _, err := tc.SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: acl}); err != nil {
		t.Fatal(err)
	}
	got, err := tc.GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.SignedIdentifiers) != 2 || *got.SignedIdentifiers[0].ID != "readers" || *got.SignedIdentifiers[1].AccessPolicy.Permission != "raud" ||
		!got.SignedIdentifiers[1].AccessPolicy.Start.Equal(expiry.Add(-2*time.Hour)) || got.SignedIdentifiers[0].AccessPolicy.Start != nil {
		t.Fatalf("policies = %+v", got.SignedIdentifiers)
	}

	client := func(v aztables.SASSignatureValues) *aztables.Client {
		t.Helper()
		v.TableName, v.Protocol = "Policed", aztables.SASProtocolHTTPSandHTTP
		qs, err := v.Sign(env.cred)
		if err != nil {
			t.Fatal(err)
		}
		c, err := aztables.NewClientWithNoCredential(env.endpoint+"/Policed?"+qs, clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reader := client(aztables.SASSignatureValues{Identifier: "readers"})
	if _, err := reader.GetEntity(ctx, "p", "r", nil); err != nil {
		t.Fatalf("read under the policy: %v", err)
	}
	_, err = reader.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "new"}), nil)
	wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	if _, err := client(aztables.SASSignatureValues{Identifier: "writers"}).AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "new"}), nil); err != nil {
		t.Fatalf("insert under the writers' policy: %v", err)
	}
	_, err = client(aztables.SASSignatureValues{Identifier: "readers", ExpiryTime: expiry}).GetEntity(ctx, "p", "r", nil)
	wantCode(t, err, http.StatusForbidden, "AuthenticationFailed")
	_, err = client(aztables.SASSignatureValues{Identifier: "nobody", Permissions: "r", ExpiryTime: expiry}).GetEntity(ctx, "p", "r", nil)
	wantCode(t, err, http.StatusForbidden, "AuthenticationFailed")
	_, err = reader.GetAccessPolicy(ctx, nil)
	wantCode(t, err, http.StatusForbidden, "AuthorizationFailure")

	// Bad input changes nothing. The SDK refuses six policies itself, so
	// those go by hand, with an account SAS.
	qp, err := aztables.AccountSASSignatureValues{Protocol: aztables.SASProtocolHTTPSandHTTP, ExpiryTime: expiry, Services: "t",
		Permissions: "rw", ResourceTypes: "sco"}.Sign(env.cred)
	if err != nil {
		t.Fatal(err)
	}
	item := "<SignedIdentifier><Id>x</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier>"
	for _, body := range []string{"<SignedIdentifiers>" + strings.Repeat(item, 6) + "</SignedIdentifiers>", "<SignedIdentifiers>"} {
		status, h, out := raw(t, http.MethodPut, env.endpoint+"/Policed?comp=acl&"+qp.Encode(), nil, body)
		if status != http.StatusBadRequest || h.Get("x-ms-error-code") != "InvalidXmlDocument" {
			t.Fatalf("bad ACL: %d %s, want 400 InvalidXmlDocument", status, out)
		}
	}
	_, err = tc.SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: []*aztables.SignedIdentifier{
		{ID: to.Ptr("bad"), AccessPolicy: &aztables.AccessPolicy{Permission: to.Ptr("rl")}}}})
	wantCode(t, err, http.StatusBadRequest, "InvalidXmlNodeValue")
	_, err = env.svc.NewClient("missing").SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: acl})
	wantCode(t, err, http.StatusNotFound, "TableNotFound")

	// Removing the policy revokes the SAS at once; so does deleting the
	// table, and a new table of the same name starts with no policies.
	if _, err := tc.SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: acl[1:]}); err != nil {
		t.Fatal(err)
	}
	_, err = reader.GetEntity(ctx, "p", "r", nil)
	wantCode(t, err, http.StatusForbidden, "AuthenticationFailed")
	if _, err := tc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	env.table(t, "policed")
	if got, err := tc.GetAccessPolicy(ctx, nil); err != nil || len(got.SignedIdentifiers) != 0 {
		t.Fatalf("policies of a re-created table: %+v, %v", got.SignedIdentifiers, err)
	}
}
