package table

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

	"github.com/weftcloud/weft/internal/storage/boltlog"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
)

const durabilityDirEnv = "WEFT_TABLE_DURABILITY_DIR"

// TestDurabilityChild is the writer half of TestDurability; it runs only
// when re-executed by it, inserting until killed and printing "ack KEY"
// after each insert the service acknowledged.
func TestDurabilityChild(t *testing.T) {
	dir := os.Getenv(durabilityDirEnv)
	if dir == "" {
		t.Skip("runs only as TestDurability's child process")
	}
	// Segments of 4 KiB: the kill lands among rotations and checkpoints.
	logger := slog.New(slog.DiscardHandler)
	st, err := openStore(dir, boltlog.Options{Logger: logger, RotateAt: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	env := envFor(t, &Service{st: st, log: logger})
	tc := env.table(t, "durable")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				rk := fmt.Sprintf("w%d-%06d", w, i)
				if _, err := tc.AddEntity(context.Background(), mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": rk, "V": i}), nil); err != nil {
					fmt.Fprintln(os.Stderr, "insert:", err)
					return
				}
				mu.Lock()
				fmt.Printf("ack %s\n", rk)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestDurability kills a writing process with SIGKILL and checks that
// every insert it acknowledged is there after reopening.
func TestDurability(t *testing.T) {
	if os.Getenv(durabilityDirEnv) != "" {
		t.Skip("parent only")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), durabilityDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		if k, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, k)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d inserts", len(acked))
	}

	have := keysIn(t, dir)
	for _, k := range acked {
		if !have[k] {
			t.Errorf("acknowledged entity %s lost", k)
		}
	}
	t.Logf("%d acknowledged, %d present after SIGKILL", len(acked), len(have))
}

// keysIn opens the table service stored in dir and returns the row keys
// of table "durable".
func keysIn(t *testing.T, dir string) map[string]bool {
	t.Helper()
	s, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := envFor(t, s)
	tc := env.svc.NewClient("durable")
	keys, _ := listKeys(t, tc, nil)
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[strings.TrimPrefix(k, "p/")] = true
	}
	return have
}

// TestPowerCut inserts entities through the service on a file system that
// is then cut from power (crashfs): every acknowledged insert is in what
// the disk kept.
func TestPowerCut(t *testing.T) {
	if lost := cutEntities(t, nil); len(lost) > 0 {
		t.Errorf("%d acknowledged inserts lost after a power cut: %v", len(lost), lost[:min(len(lost), 5)])
	}
}

// TestPowerCutCatchesAMissingSync shows that TestPowerCut can fail: with
// the log's fdatasync made to do nothing, a cut loses inserts.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	wal := func(p string) bool { return strings.Contains(filepath.Base(p), ".wal-") }
	if lost := cutEntities(t, wal); len(lost) == 0 {
		t.Error("no acknowledged insert lost with the log's syncs ignored: the power-cut test cannot fail")
	}
}

// cutEntities inserts 300 entities with four writers on a crashfs whose
// syncs of the files ignore matches are ignored, cuts the power and
// returns the acknowledged inserts the disk lost.
func cutEntities(t *testing.T, ignore func(path string) bool) []string {
	dir := t.TempDir()
	fs := crashfs.New(t, dir)
	if ignore != nil {
		fs.IgnoreSyncs(ignore)
	}
	logger := slog.New(slog.DiscardHandler)
	st, err := openStore(dir, boltlog.Options{Logger: logger, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{st: st, log: logger}
	defer svc.Close()
	tc := envFor(t, svc).table(t, "durable")
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 75 {
				rk := fmt.Sprintf("w%d-%06d", w, i)
				if _, err := tc.AddEntity(context.Background(), mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": rk, "V": i}), nil); err != nil {
					t.Errorf("insert %s: %v", rk, err)
					return
				}
				mu.Lock()
				acked = append(acked, rk)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	have := keysIn(t, fs.Crash())
	var lost []string
	for _, k := range acked {
		if !have[k] {
			lost = append(lost, k)
		}
	}
	return lost
}
