package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/pki"
)

// TestServerStopsWhileWaitingForPeers: a server waiting for the other
// servers of --bootstrap-expect stops as soon as its context ends (SIGTERM
// or Ctrl-C in `weft server`), rather than when the wait times out.
func TestServerStopsWhileWaitingForPeers(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "tls")
	if err := pki.Init(creds, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunServer(ctx, ServerConfig{
			Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "s1", StorageDisabled: true, TLSDir: creds,
			BootstrapExpect: 3, Join: []string{"127.0.0.1:1", "127.0.0.1:2"},
			Logger: slog.New(slog.DiscardHandler),
		})
	}()
	select {
	case err := <-done:
		t.Fatalf("the server did not wait for its peers: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stopped with %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the server still waits for its peers 2s after its context ended")
	}
}

// TestReservedPorts: the ports no service may publish on are the API's,
// Raft's and, when it runs, the storage's.
func TestReservedPorts(t *testing.T) {
	got := reservedPorts("127.0.0.1:7070", "127.0.0.1:7071", false, 10000, 10001, 10002)
	want := map[int]string{7070: "API", 7071: "Raft", 10000: "storage blob", 10001: "storage queue", 10002: "storage table"}
	if len(got) != len(want) {
		t.Fatalf("reserved %v, want %v", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("port %d: %q, want %q", p, got[p], w)
		}
	}
	if got := reservedPorts("127.0.0.1:7070", "127.0.0.1:7071", true, 10000, 10001, 10002); len(got) != 2 {
		t.Errorf("without storage: %v, want the API and Raft ports only", got)
	}
}

// TestServerConfigDefaults: a server's configuration gets its defaults in
// one place, and one without a data folder is refused naming the flag.
func TestServerConfigDefaults(t *testing.T) {
	if _, err := (ServerConfig{}).withDefaults(); err == nil || err.Error() != "server: --data is required" {
		t.Errorf("no data folder: %v", err)
	}
	if _, err := (ServerConfig{Data: t.TempDir(), DownWaveRate: -1}).withDefaults(); err == nil || err.Error() != "server: --down-wave-rate -1: must not be negative" {
		t.Errorf("a negative --down-wave-rate: %v", err)
	}
	data := filepath.Join(t.TempDir(), "new", "server")
	got, err := ServerConfig{Data: data, Listen: "127.0.0.2:7170", QueuePort: 20001}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.LBHost != "127.0.0.2" || got.BlobPort != DefaultBlobPort || got.QueuePort != 20001 || got.TablePort != DefaultTablePort || got.Name == "" {
		t.Errorf("defaults: %+v", got)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("the data folder was not made: %v", err)
	}
	if got, _ := (ServerConfig{Data: data}).withDefaults(); got.Listen != DefaultListen || got.LBHost != "127.0.0.1" {
		t.Errorf("defaults without --listen: %+v", got)
	}
}
