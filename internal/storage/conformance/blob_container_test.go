package conformance

// Blob service: operations on containers and on the account.

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
)

func TestBlob_CreateContainer(t *testing.T) {
	cover(t, storage.Blob, "Create Container")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.svc.NewContainerClient("box")
	t.Run("success", func(t *testing.T) {
		resp, err := cc.Create(ctx, &container.CreateOptions{Metadata: map[string]*string{"owner": to.Ptr("ann")}, Access: to.Ptr(container.PublicAccessTypeBlob)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ETag == nil || resp.LastModified == nil {
			t.Errorf("no ETag or Last-Modified: %+v", resp)
		}
	})
	t.Run("ContainerAlreadyExists", func(t *testing.T) {
		_, err := cc.Create(ctx, nil)
		wantErr(t, err, http.StatusConflict, "ContainerAlreadyExists")
	})
	t.Run("InvalidResourceName", func(t *testing.T) {
		for _, name := range []string{"Upper", "a--b", "-ab", "ab-", "a_b"} {
			r := env.do(t, http.MethodPut, "/"+name+"?restype=container", nil, nil)
			r.want(t, http.StatusBadRequest, "InvalidResourceName")
		}
		// A name of the wrong length is OutOfRangeInput, as Azure answers.
		r := env.do(t, http.MethodPut, "/ab?restype=container", nil, nil)
		r.want(t, http.StatusBadRequest, "OutOfRangeInput")
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/other?restype=container", map[string]string{"x-ms-blob-public-access": "everyone"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
}

func TestBlob_GetContainerProperties(t *testing.T) {
	cover(t, storage.Blob, "Get Container Properties")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.svc.NewContainerClient("box")
	created, err := cc.Create(ctx, &container.CreateOptions{Metadata: map[string]*string{"owner": to.Ptr("ann")}, Access: to.Ptr(container.PublicAccessTypeBlob)})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		p, err := cc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *p.ETag != *created.ETag || *p.Metadata["Owner"] != "ann" || *p.BlobPublicAccess != container.PublicAccessTypeBlob ||
			*p.LeaseState != lease.StateTypeAvailable || *p.LeaseStatus != lease.StatusTypeUnlocked {
			t.Errorf("properties %+v", p)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_GetContainerMetadata(t *testing.T) {
	cover(t, storage.Blob, "Get Container Metadata")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"k": to.Ptr("v")}}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/box?restype=container&comp=metadata", nil, nil)
		r.want(t, http.StatusOK, "")
		if r.header.Get("x-ms-meta-k") != "v" || r.header.Get("ETag") == "" {
			t.Errorf("headers %v", r.header)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/absent?restype=container&comp=metadata", nil, nil)
		r.want(t, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_SetContainerMetadata(t *testing.T) {
	cover(t, storage.Blob, "Set Container Metadata")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		before, err := cc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"a": to.Ptr("1"), "b": to.Ptr("2")}}); err != nil {
			t.Fatal(err)
		}
		// The metadata is replaced whole, and the ETag changes.
		if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"c": to.Ptr("3")}}); err != nil {
			t.Fatal(err)
		}
		p, err := cc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range p.Metadata {
			got[k] = *v
		}
		if diff := cmp.Diff(map[string]string{"C": "3"}, got); diff != "" || *p.ETag == *before.ETag {
			t.Errorf("metadata (-want +got):\n%s; ETag %s (was %s)", diff, *p.ETag, *before.ETag)
		}
	})
	t.Run("InvalidMetadata", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box?restype=container&comp=metadata", map[string]string{"x-ms-meta-1bad": "v"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidMetadata")
	})
	t.Run("ConditionNotMet", func(t *testing.T) {
		_, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"d": to.Ptr("4")},
			ModifiedAccessConditions: &container.ModifiedAccessConditions{IfModifiedSince: to.Ptr(time.Now().Add(time.Hour))}})
		wantErr(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").SetMetadata(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_SetContainerACL(t *testing.T) {
	cover(t, storage.Blob, "Set Container ACL")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	policy := []*container.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &container.AccessPolicy{
		Start: to.Ptr(start), Expiry: to.Ptr(start.Add(24 * time.Hour)), Permission: to.Ptr("rl")}}}
	t.Run("success", func(t *testing.T) {
		if _, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{Access: to.Ptr(container.PublicAccessTypeContainer), ContainerACL: policy}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box?restype=container&comp=acl", nil, []byte("<SignedIdentifiers><SignedIdentifier>"))
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
	t.Run("more than five", func(t *testing.T) {
		var six []*container.SignedIdentifier
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			six = append(six, &container.SignedIdentifier{ID: to.Ptr(id), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("r")}})
		}
		_, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: six})
		wantErr(t, err, http.StatusBadRequest, "InvalidXmlDocument")
		// The refused set left the policies as they were.
		got, err := cc.GetAccessPolicy(ctx, nil)
		if err != nil || len(got.SignedIdentifiers) != 1 {
			t.Errorf("policies after a refused set: %d, %v", len(got.SignedIdentifiers), err)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").SetAccessPolicy(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_GetContainerACL(t *testing.T) {
	cover(t, storage.Blob, "Get Container ACL")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{Access: to.Ptr(container.PublicAccessTypeBlob),
		ContainerACL: []*container.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &container.AccessPolicy{
			Start: to.Ptr(start), Expiry: to.Ptr(start.Add(time.Hour)), Permission: to.Ptr("rl")}}}}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		got, err := cc.GetAccessPolicy(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.BlobPublicAccess != container.PublicAccessTypeBlob || len(got.SignedIdentifiers) != 1 {
			t.Fatalf("ACL %+v", got)
		}
		si := got.SignedIdentifiers[0]
		if *si.ID != "readers" || *si.AccessPolicy.Permission != "rl" || !si.AccessPolicy.Start.Equal(start) {
			t.Errorf("policy %s %s %v", *si.ID, *si.AccessPolicy.Permission, si.AccessPolicy.Start)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").GetAccessPolicy(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_DeleteContainer(t *testing.T) {
	cover(t, storage.Blob, "Delete Container")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	env.upload(t, cc, "b", "x", nil)
	t.Run("LeaseIdMissing", func(t *testing.T) {
		lc, err := lease.NewContainerClient(cc, &lease.ContainerClientOptions{LeaseID: to.Ptr("11111111-1111-1111-1111-111111111111")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lc.AcquireLease(ctx, -1, nil); err != nil {
			t.Fatal(err)
		}
		_, err = cc.Delete(ctx, nil)
		wantErr(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
		if _, err := lc.ReleaseLease(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("success", func(t *testing.T) {
		if _, err := cc.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		_, err := cc.NewBlobClient("b").GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := cc.Delete(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_LeaseContainer(t *testing.T) {
	cover(t, storage.Blob, "Lease Container")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	id, other := "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	lc, _ := lease.NewContainerClient(cc, &lease.ContainerClientOptions{LeaseID: to.Ptr(id)})
	lc2, _ := lease.NewContainerClient(cc, &lease.ContainerClientOptions{LeaseID: to.Ptr(other)})
	t.Run("success", func(t *testing.T) {
		resp, err := lc.AcquireLease(ctx, 15, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.LeaseID != id {
			t.Errorf("lease %s", *resp.LeaseID)
		}
		p, err := cc.GetProperties(ctx, nil)
		if err != nil || *p.LeaseState != lease.StateTypeLeased || *p.LeaseDuration != lease.DurationTypeFixed {
			t.Errorf("properties after acquire: %v %v, %v", p.LeaseState, p.LeaseDuration, err)
		}
		if _, err := lc.RenewLease(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LeaseAlreadyPresent", func(t *testing.T) {
		_, err := lc2.AcquireLease(ctx, -1, nil)
		wantErr(t, err, http.StatusConflict, "LeaseAlreadyPresent")
	})
	t.Run("LeaseIdMismatchWithLeaseOperation", func(t *testing.T) {
		_, err := lc2.ReleaseLease(ctx, nil)
		wantErr(t, err, http.StatusConflict, "LeaseIdMismatchWithLeaseOperation")
	})
	t.Run("change and break", func(t *testing.T) {
		if _, err := lc.ChangeLease(ctx, other, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := lc2.BreakLease(ctx, &lease.ContainerBreakOptions{BreakPeriod: to.Ptr[int32](0)}); err != nil {
			t.Fatal(err)
		}
		p, err := cc.GetProperties(ctx, nil)
		if err != nil || *p.LeaseState != lease.StateTypeBroken {
			t.Errorf("after break: %v, %v", p.LeaseState, err)
		}
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		// Container leases take no ETag condition.
		r := env.do(t, http.MethodPut, "/box?restype=container&comp=lease", map[string]string{
			"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1", "If-Match": `"0x1"`}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		lx, _ := lease.NewContainerClient(env.svc.NewContainerClient("absent"), nil)
		_, err := lx.AcquireLease(ctx, -1, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_ListContainers(t *testing.T) {
	cover(t, storage.Blob, "List Containers")
	env := newBlobEnv(t)
	ctx := context.Background()
	for _, n := range []string{"alpha", "beta", "betb", "gamma"} {
		cc := env.container(t, n)
		if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"name": to.Ptr(n)}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(t *testing.T, o *service.ListContainersOptions) []string {
		t.Helper()
		var names []string
		pager := env.svc.NewListContainersPager(o)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page.ContainerItems {
				names = append(names, *c.Name)
			}
		}
		return names
	}
	t.Run("success", func(t *testing.T) {
		if got, want := list(t, nil), []string{"alpha", "beta", "betb", "gamma"}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v", got, want)
		}
		if got, want := list(t, &service.ListContainersOptions{Prefix: to.Ptr("bet"), MaxResults: to.Ptr[int32](1)}), []string{"beta", "betb"}; !slices.Equal(got, want) {
			t.Errorf("pages of prefix bet: %v, want %v", got, want)
		}
	})
	t.Run("include metadata", func(t *testing.T) {
		page, err := env.svc.NewListContainersPager(&service.ListContainersOptions{Include: service.ListContainersInclude{Metadata: true}}).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := page.ContainerItems[0]
		if v := c.Metadata["name"]; v == nil || *v != "alpha" || c.Properties.ETag == nil {
			t.Errorf("first item %+v", c)
		}
	})
	t.Run("OutOfRangeInput", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/?comp=list&maxresults=0", nil, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("maxresults=0: %d %s", r.status, r.header.Get("x-ms-error-code"))
		}
	})
}

func TestBlob_GetAccountInformation(t *testing.T) {
	cover(t, storage.Blob, "Get Account Information")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	t.Run("success", func(t *testing.T) {
		info, err := env.svc.GetAccountInfo(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.SKUName == nil || info.AccountKind == nil {
			t.Errorf("account info %+v", info)
		}
		// Also on a container and a blob.
		if _, err := cc.GetAccountInfo(ctx, nil); err != nil {
			t.Error(err)
		}
		bc := env.upload(t, cc, "b", "x", nil)
		if _, err := bc.GetAccountInfo(ctx, nil); err != nil {
			t.Error(err)
		}
	})
}

func TestBlob_PreflightBlobRequest(t *testing.T) {
	cover(t, storage.Blob, "Preflight Blob Request")
	env := newBlobEnv(t)
	env.container(t, "box")
	ctx := context.Background()
	preflight := func(t *testing.T, origin, method string) response {
		return preflightRequest(t, env.endpoint+"/box/b", origin, method, "x-ms-blob-type")
	}
	t.Run("CorsPreflightFailure", func(t *testing.T) {
		preflight(t, "https://example.com", "PUT").want(t, http.StatusForbidden, "CorsPreflightFailure")
	})
	if _, err := env.svc.SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{{
		AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,PUT"),
		AllowedHeaders: to.Ptr("x-ms-*"), ExposedHeaders: to.Ptr("x-ms-request-id"), MaxAgeInSeconds: to.Ptr[int32](60),
	}}}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		r := preflight(t, "https://example.com", "PUT")
		r.want(t, http.StatusOK, "")
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "PUT",
			"Access-Control-Allow-Headers": "x-ms-blob-type", "Access-Control-Max-Age": "60",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("CORS headers on the request itself", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/box?restype=container", map[string]string{"Origin": "https://example.com"}, nil)
		r.want(t, http.StatusOK, "")
		if r.header.Get("Access-Control-Allow-Origin") != "https://example.com" || r.header.Get("Access-Control-Expose-Headers") != "x-ms-request-id" {
			t.Errorf("CORS headers: %v", r.header)
		}
	})
	t.Run("no matching rule", func(t *testing.T) {
		preflight(t, "https://other.example", "GET").want(t, http.StatusForbidden, "CorsPreflightFailure")
		preflight(t, "https://example.com", "DELETE").want(t, http.StatusForbidden, "CorsPreflightFailure")
	})
	t.Run("MissingRequiredHeader", func(t *testing.T) {
		preflight(t, "", "GET").want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
}
