package queue

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
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

	found := readBack(t, dir)
	for id := range acked {
		if !found[id] {
			t.Errorf("acknowledged message %s lost", id)
		}
	}
	t.Logf("%d acknowledged, %d found after SIGKILL", len(acked), len(found))
}

// readBack opens the queue service stored in dir and returns the text of
// every message of queue "durable".
func readBack(t *testing.T, dir string) map[string]bool {
	t.Helper()
	svc, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
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
			return found
		}
		for _, m := range got.Messages {
			found[*m.MessageText] = true
		}
	}
}

// TestPowerCut puts messages through the service on a file system that is
// then cut from power (crashfs): every acknowledged message is in what
// the disk kept.
func TestPowerCut(t *testing.T) {
	if lost := cutMessages(t, nil); len(lost) > 0 {
		t.Errorf("%d acknowledged messages lost after a power cut: %v", len(lost), lost[:min(len(lost), 5)])
	}
}

// TestPowerCutCatchesAMissingSync shows that TestPowerCut can fail: with
// the log's fdatasync made to do nothing, a cut loses messages.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	wal := func(p string) bool { return strings.Contains(filepath.Base(p), ".wal-") }
	if lost := cutMessages(t, wal); len(lost) == 0 {
		t.Error("no acknowledged message lost with the log's syncs ignored: the power-cut test cannot fail")
	}
}

// cutMessages puts 200 messages with four writers on a crashfs whose
// syncs of the files ignore matches are ignored, cuts the power and
// returns the acknowledged messages the disk lost.
func cutMessages(t *testing.T, ignore func(path string) bool) []string {
	dir := t.TempDir()
	fs := crashfs.New(t, dir)
	if ignore != nil {
		fs.IgnoreSyncs(ignore)
	}
	svc, err := OpenWith(dir, storage.Options{Logger: slog.New(slog.DiscardHandler), FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
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
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				text := fmt.Sprintf("w%d-%d", w, i)
				if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
					t.Errorf("enqueue %s: %v", text, err)
					return
				}
				mu.Lock()
				acked = append(acked, text)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	found := readBack(t, fs.Crash())
	var lost []string
	for _, text := range acked {
		if !found[text] {
			lost = append(lost, text)
		}
	}
	return lost
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
