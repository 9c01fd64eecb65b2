package storageserver

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
)

// TestServesAllThree starts the services on free ports and uses each
// through its official SDK client with the server's connection string;
// then restarts on the same data and reads back.
func TestServesAllThree(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	start := func() *Server {
		t.Helper()
		s, err := Start(Config{Data: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	cs := s.ConnectionString()
	blobs, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "docs", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "docs", "hello.txt", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	queues, err := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queues.CreateQueue(ctx, "jobs", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := queues.NewQueueClient("jobs").EnqueueMessage(ctx, "job-1", nil); err != nil {
		t.Fatal(err)
	}
	tables, err := aztables.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tables.CreateTable(ctx, "people", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tables.NewClient("people").AddEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"r","Name":"Ada"}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start()
	defer s.Close()
	cs = s.ConnectionString()
	blobs, _ = azblob.NewClientFromConnectionString(cs, nil)
	resp, err := blobs.DownloadStream(ctx, "docs", "hello.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("blob after restart = %q", body)
	}
	queues, _ = azqueue.NewServiceClientFromConnectionString(cs, nil)
	msgs, err := queues.NewQueueClient("jobs").PeekMessage(ctx, nil)
	if err != nil || len(msgs.Messages) != 1 || *msgs.Messages[0].MessageText != "job-1" {
		t.Fatalf("queue after restart: %v", err)
	}
	tables, _ = aztables.NewServiceClientFromConnectionString(cs, nil)
	ent, err := tables.NewClient("people").GetEntity(ctx, "p", "r", nil)
	if err != nil || !strings.Contains(string(ent.Value), "Ada") {
		t.Fatalf("table after restart: %v", err)
	}
}

// TestPoliciesSurviveRestart sets stored access policies on a container,
// a queue and a table, restarts on the same data, and finds them in the
// order set; a SAS naming one still works.
func TestPoliciesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Start(Config{Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ids := []string{"zeta", "alpha", "mid"}
	cs := s.ConnectionString()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	queues, _ := azqueue.NewServiceClientFromConnectionString(cs, nil)
	tables, _ := aztables.NewServiceClientFromConnectionString(cs, nil)
	var cacl []*container.SignedIdentifier
	var qacl []*azqueue.SignedIdentifier
	var tacl []*aztables.SignedIdentifier
	for _, id := range ids {
		cacl = append(cacl, &container.SignedIdentifier{ID: to.Ptr(id), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("r"), Expiry: &expiry}})
		qacl = append(qacl, &azqueue.SignedIdentifier{ID: to.Ptr(id), AccessPolicy: &azqueue.AccessPolicy{Permission: to.Ptr("r"), Expiry: &expiry}})
		tacl = append(tacl, &aztables.SignedIdentifier{ID: to.Ptr(id), AccessPolicy: &aztables.AccessPolicy{Permission: to.Ptr("r"), Expiry: &expiry}})
	}
	if _, err := blobs.CreateContainer(ctx, "kept", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "kept", "doc.txt", []byte("doc"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.ServiceClient().NewContainerClient("kept").SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: cacl}); err != nil {
		t.Fatal(err)
	}
	if _, err := queues.CreateQueue(ctx, "kept", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := queues.NewQueueClient("kept").SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: qacl}); err != nil {
		t.Fatal(err)
	}
	if _, err := tables.CreateTable(ctx, "kept", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tables.NewClient("kept").SetAccessPolicy(ctx, &aztables.SetAccessPolicyOptions{TableACL: tacl}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Start(Config{Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs = s.ConnectionString()
	blobs, _ = azblob.NewClientFromConnectionString(cs, nil)
	queues, _ = azqueue.NewServiceClientFromConnectionString(cs, nil)
	tables, _ = aztables.NewServiceClientFromConnectionString(cs, nil)
	var got [3][]string
	cp, err := blobs.ServiceClient().NewContainerClient("kept").GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range cp.SignedIdentifiers {
		got[0] = append(got[0], *si.ID)
	}
	qp, err := queues.NewQueueClient("kept").GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range qp.SignedIdentifiers {
		got[1] = append(got[1], *si.ID)
	}
	tp, err := tables.NewClient("kept").GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range tp.SignedIdentifiers {
		got[2] = append(got[2], *si.ID)
	}
	for i, svc := range []string{"container", "queue", "table"} {
		if diff := cmp.Diff(ids, got[i]); diff != "" {
			t.Errorf("%s policies after restart (-want +got):\n%s", svc, diff)
		}
	}
	cred, err := azblob.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ContainerName: "kept", BlobName: "doc.txt", Identifier: "alpha"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := blob.NewClientWithNoCredential(s.BlobEndpoint()+"/kept/doc.txt?"+q.Encode(), nil)
	resp, err := bc.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatalf("SAS under a policy after restart: %v", err)
	}
	resp.Body.Close()
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Data: t.TempDir()}) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}

// TestCountsTransactionsPerAccount makes known requests of the three
// services through their SDKs, one of them refused by the service: each
// counts once for the account. A request whose signature fails counts
// nothing.
func TestCountsTransactionsPerAccount(t *testing.T) {
	s, err := Start(Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	cs := s.ConnectionString()
	blobs, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	queues, err := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "box", nil); err != nil { // 1
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "box", "b", []byte("x"), nil); err != nil { // 2
		t.Fatal(err)
	}
	if _, err := blobs.DeleteBlob(ctx, "box", "missing", nil); err == nil { // 3: 404 counts too
		t.Fatal("deleted a missing blob")
	}
	if _, err := queues.CreateQueue(ctx, "jobs", nil); err != nil { // 4
		t.Fatal(err)
	}
	bad := strings.Replace(cs, "AccountKey=", "AccountKey=AAAA", 1)
	if other, err := azblob.NewClientFromConnectionString(bad, nil); err == nil {
		if _, err := other.CreateContainer(ctx, "other", nil); err == nil {
			t.Fatal("a wrong key was accepted")
		}
	}
	if got := s.Transactions(); got[storage.DevAccount] != 4 || len(got) != 1 {
		t.Errorf("transactions = %v, want 4 for %s", got, storage.DevAccount)
	}
}

// TestFullAccountsRefuseWrites: once a count of the accounts' bytes finds
// an account full (Config.Full), its uploads are refused with Azure's
// answer to a write the account may not make, while reads and deletes go
// on; the count after a delete lets it write again.
func TestFullAccountsRefuseWrites(t *testing.T) {
	const limit = 1000
	s, err := Start(Config{Data: t.TempDir(), CountEvery: 20 * time.Millisecond, Full: func(bytes map[string]int64) map[string]string {
		if bytes[storage.DevAccount] >= limit {
			return map[string]string{storage.DevAccount: "its quota is used"}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	blobs, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "box", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "box", "big", make([]byte, limit), nil); err != nil {
		t.Fatal(err)
	}
	refused := func() error {
		_, err := blobs.UploadBuffer(ctx, "box", "more", []byte("x"), nil)
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for refused() == nil {
		if time.Now().After(deadline) {
			t.Fatal("writes still accepted 10 s after the account was full")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := refused(); !strings.Contains(err.Error(), "InsufficientAccountPermissions") || !strings.Contains(err.Error(), "its quota is used") {
		t.Fatalf("refusal = %v, want InsufficientAccountPermissions naming the reason", err)
	}
	if _, err := blobs.DownloadStream(ctx, "box", "big", nil); err != nil {
		t.Errorf("a read of a full account: %v", err)
	}
	if _, err := blobs.DeleteBlob(ctx, "box", "big", nil); err != nil {
		t.Fatalf("a delete in a full account: %v", err)
	}
	if _, err := blobs.DeleteBlob(ctx, "box", "more", nil); err != nil && !strings.Contains(err.Error(), "BlobNotFound") {
		t.Fatal(err)
	}
	for refused() != nil {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("writes still refused after the account was emptied")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.AccountBytes()[storage.DevAccount]; got > limit {
		t.Errorf("AccountBytes = %d after the delete", got)
	}
}
