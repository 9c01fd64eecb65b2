package replica

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	azservice "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
)

// TestReplicaHoldsExpiryAndDeletedContainers: a blob's expiry time and a
// deleted container kept for restore (its record and its blobs, moved in
// one write) reach the replica by the log like any blob write; promoted,
// the replica shows the one and restores the other.
func TestReplicaHoldsExpiryAndDeletedContainers(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	if err := c.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientFromConnectionString(c.primary.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Container soft delete on (Set Blob Service Properties; the Go SDK
	// does not write this element).
	doc := "<StorageServiceProperties><ContainerDeleteRetentionPolicy><Enabled>true</Enabled><Days>7</Days>" +
		"</ContainerDeleteRetentionPolicy></StorageServiceProperties>"
	req, err := http.NewRequest(http.MethodPut, strings.TrimSuffix(blobs.URL(), "/")+"/?restype=service&comp=properties", strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", "2021-12-02")
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	storage.SignSharedKey(req, storage.Blob, storage.DevAccount, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Set Blob Service Properties: %d", resp.StatusCode)
	}
	for _, name := range []string{"keep", "gone"} {
		if _, err := blobs.CreateContainer(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := blobs.UploadBuffer(ctx, name, "b", []byte("in "+name), nil); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if _, err := blobs.ServiceClient().NewContainerClient("keep").NewBlockBlobClient("b").SetExpiry(ctx, blockblob.ExpiryTypeAbsolute(at), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.DeleteContainer(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	c.waitInSync()

	promoted, err := azblob.NewClientFromConnectionString(c.promote().ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := promoted.ServiceClient().NewContainerClient("keep").NewBlobClient("b").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.ExpiresOn == nil || !p.ExpiresOn.Equal(at) {
		t.Errorf("the replica's expiry time %v, want %v", p.ExpiresOn, at)
	}
	page, err := promoted.ServiceClient().NewListContainersPager(&azservice.ListContainersOptions{Include: azservice.ListContainersInclude{Deleted: true}}).NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for _, item := range page.ContainerItems {
		if *item.Name == "gone" && item.Deleted != nil && *item.Deleted {
			version = *item.Version
		}
	}
	if version == "" {
		t.Fatal("the replica has no deleted container gone")
	}
	if _, err := promoted.ServiceClient().RestoreContainer(ctx, "gone", version, nil); err != nil {
		t.Fatal(err)
	}
	dl, err := promoted.DownloadStream(ctx, "gone", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	if !bytes.Equal(got, []byte("in gone")) {
		t.Errorf("restored on the replica: %q", got)
	}
}
