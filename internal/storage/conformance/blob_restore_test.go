package conformance

// Blob service: container soft delete and Restore Container.

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
)

// containerRetention sets the account's ContainerDeleteRetentionPolicy.
// Azure sets it through its management API (the blobServices resource of
// the storage account), which Weft does not have; Weft takes it in Set
// Blob Service Properties, which the Go SDK does not write, hence raw.
func (e *blobEnv) containerRetention(t *testing.T, enabled bool, days int) response {
	t.Helper()
	policy := "<Enabled>false</Enabled>"
	if enabled {
		policy = "<Enabled>true</Enabled><Days>" + strconv.Itoa(days) + "</Days>"
	}
	doc := "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties><ContainerDeleteRetentionPolicy>" +
		policy + "</ContainerDeleteRetentionPolicy></StorageServiceProperties>"
	return e.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"}, []byte(doc))
}

// deletedContainers lists the account's containers with include=deleted:
// name -> versions of the deleted ones, "" for a live one.
func (e *blobEnv) deletedContainers(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	pager := e.svc.NewListContainersPager(&service.ListContainersOptions{
		Include: service.ListContainersInclude{Deleted: true}, MaxResults: to.Ptr[int32](1)})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.ContainerItems {
			v := ""
			if c.Deleted != nil && *c.Deleted {
				v = *c.Version
				p := c.Properties
				if p.DeletedTime == nil || time.Since(*p.DeletedTime) > time.Hour || p.RemainingRetentionDays == nil || *p.RemainingRetentionDays != 7 {
					t.Errorf("deleted %s: deleted time %v, remaining days %v", *c.Name, p.DeletedTime, p.RemainingRetentionDays)
				}
			}
			out[*c.Name] = append(out[*c.Name], v)
		}
	}
	return out
}

func TestBlob_RestoreContainer(t *testing.T) {
	cover(t, storage.Blob, "Restore Container")
	env := newBlobEnv(t)
	ctx := context.Background()

	t.Run("without container soft delete", func(t *testing.T) {
		cc := env.container(t, "plain")
		if _, err := cc.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := env.deletedContainers(t); len(got) != 0 {
			t.Errorf("listed %v", got)
		}
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		// Kept 1 to 365 days, as deleted blobs are.
		env.containerRetention(t, true, 0).want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
	env.containerRetention(t, true, 7).want(t, http.StatusAccepted, "")

	cc := env.container(t, "box")
	env.upload(t, cc, "b", "kept", teamTags)
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var first string
	t.Run("soft delete", func(t *testing.T) {
		_, err := cc.GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
		got := env.deletedContainers(t)
		if len(got) != 1 || len(got["box"]) != 1 || got["box"][0] == "" {
			t.Fatalf("listed %v, want box deleted", got)
		}
		first = got["box"][0]
		// Without include=deleted it is not listed.
		page, err := env.svc.NewListContainersPager(nil).NextPage(ctx)
		if err != nil || len(page.ContainerItems) != 0 {
			t.Errorf("listed %d containers, %v", len(page.ContainerItems), err)
		}
		// Nor are its blobs found by their tags.
		found, err := env.svc.FilterBlobs(ctx, `"team" = 'blue'`, nil)
		if err != nil || len(found.Blobs) != 0 {
			t.Errorf("found %d blobs of a deleted container, %v", len(found.Blobs), err)
		}
	})
	if first == "" {
		t.Fatal("no deleted version")
	}

	t.Run("ContainerAlreadyExists", func(t *testing.T) {
		// The name is free meanwhile; a container there refuses the restore.
		again := env.container(t, "box")
		_, err := env.svc.RestoreContainer(ctx, "box", first, nil)
		wantErr(t, err, http.StatusConflict, "ContainerAlreadyExists")
		if _, err := again.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := env.deletedContainers(t)["box"]; len(got) != 2 || got[0] == got[1] {
			t.Errorf("versions of box %v, want two", got)
		}
	})
	t.Run("success", func(t *testing.T) {
		if _, err := env.svc.RestoreContainer(ctx, "box", first, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := cc.NewBlobClient("b").DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "kept" {
			t.Errorf("restored blob holds %q", got)
		}
		found, err := env.svc.FilterBlobs(ctx, `"team" = 'blue'`, nil)
		if err != nil || len(found.Blobs) != 1 {
			t.Errorf("found %d restored blobs by tags, %v", len(found.Blobs), err)
		}
		// The other deletion is still kept; the restored one is no more.
		if got := env.deletedContainers(t)["box"]; len(got) != 2 || got[0] != "" || got[1] == first {
			t.Errorf("box listed as %v", got)
		}
	})
	t.Run("under another name", func(t *testing.T) {
		version := env.deletedContainers(t)["box"][1]
		env.do(t, http.MethodPut, "/other?restype=container&comp=undelete", map[string]string{
			"x-ms-deleted-container-name": "box", "x-ms-deleted-container-version": version}, nil).want(t, http.StatusCreated, "")
		if _, err := env.svc.NewContainerClient("other").GetProperties(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		// Restored already, or never deleted.
		_, err := env.svc.RestoreContainer(ctx, "box", first, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
		_, err = env.svc.RestoreContainer(ctx, "never", "01D60F8BB59A4652", nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("MissingRequiredHeader", func(t *testing.T) {
		env.do(t, http.MethodPut, "/box2?restype=container&comp=undelete", nil, nil).want(t, http.StatusBadRequest, "MissingRequiredHeader")
		env.do(t, http.MethodPut, "/box2?restype=container&comp=undelete", map[string]string{
			"x-ms-deleted-container-name": "box"}, nil).want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("AuthorizationPermissionMismatch", func(t *testing.T) {
		// Restore Container takes shared key or an account SAS; one
		// without write permission is refused.
		cc := env.container(t, "gone")
		if _, err := cc.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		version := env.deletedContainers(t)["gone"][0]
		cred, err := service.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
		if err != nil {
			t.Fatal(err)
		}
		client := func(perms sas.AccountPermissions) *service.Client {
			qp, err := sas.AccountSignatureValues{
				Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
				Permissions:   perms.String(),
				ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
			}.SignWithSharedKey(cred)
			if err != nil {
				t.Fatal(err)
			}
			c, err := service.NewClientWithNoCredential(env.endpoint+"/?"+qp.Encode(), &service.ClientOptions{ClientOptions: env.clientOptions()})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		_, err = client(sas.AccountPermissions{Read: true, List: true}).RestoreContainer(ctx, "gone", version, nil)
		wantErr(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
		// Nor does a service SAS, even with every permission on the
		// container: the reference takes Shared Key and account SAS.
		qp, err := sas.BlobSignatureValues{
			Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
			Permissions: (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}).String(), ContainerName: "gone",
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, env.endpoint+"/gone?restype=container&comp=undelete&"+qp.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-version", "2021-12-02")
		req.Header.Set("x-ms-deleted-container-name", "gone")
		req.Header.Set("x-ms-deleted-container-version", version)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-error-code") != "AuthorizationFailure" {
			t.Errorf("a service SAS: %d %s, want 403 AuthorizationFailure", resp.StatusCode, resp.Header.Get("x-ms-error-code"))
		}
		if _, err := client(sas.AccountPermissions{Write: true}).RestoreContainer(ctx, "gone", version, nil); err != nil {
			t.Fatal(err)
		}
	})
}
