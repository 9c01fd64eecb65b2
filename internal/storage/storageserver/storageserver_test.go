package storageserver

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
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

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Data: t.TempDir()}) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}
