package queue

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// childEnv tells a re-executed test binary to act as the writer.
const childEnv = "WEFT_QUEUE_DURABILITY_DIR"

// TestDurability puts messages in a child process that prints each id
// once the service has acknowledged it, kills the child with SIGKILL
// mid-stream, reopens the store and finds every acknowledged message.
func TestDurability(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		writeUntilKilled(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 200 {
		if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[id] = true
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d messages before exiting", len(acked))
	}

	svc, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer svc.Close()
	ep := storagetest.Serve(t, storage.Queue, svc)
	client, err := azqueue.NewServiceClientFromConnectionString(storagetest.ConnectionString("", ep, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	q := client.NewQueueClient("durable")
	ctx := context.Background()
	found := map[string]bool{}
	for {
		got, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](32), VisibilityTimeout: to.Ptr[int32](3600)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Messages) == 0 {
			break
		}
		for _, m := range got.Messages {
			found[*m.MessageText] = true
		}
	}
	for id := range acked {
		if !found[id] {
			t.Errorf("acknowledged message %s lost", id)
		}
	}
	t.Logf("%d acknowledged, %d found after SIGKILL", len(acked), len(found))
}

// writeUntilKilled is the child: four writers put messages as fast as
// they can, so the kill lands amid group commits.
func writeUntilKilled(t *testing.T, dir string) {
	svc, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep := storagetest.Serve(t, storage.Queue, svc)
	client, err := azqueue.NewServiceClientFromConnectionString(storagetest.ConnectionString("", ep, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.CreateQueue(ctx, "durable", nil); err != nil {
		t.Fatal(err)
	}
	q := client.NewQueueClient("durable")
	lines := make(chan string)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				text := fmt.Sprintf("w%d-%d", w, i)
				if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
					return
				}
				lines <- text
			}
		}()
	}
	for l := range lines {
		fmt.Println("acked " + l)
	}
}
