package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
	"github.com/weftcloud/weft/internal/untar"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// TestUnpackedPackagesShareTheNodesLimit: every instance unpacks its own
// copy of its package, and the copies together stay under the node's
// limit (MaxUnpackedBytes): one past it is refused with the limit named,
// and removing a copy makes room. An agent started again counts the
// copies already on disk.
func TestUnpackedPackagesShareTheNodesLimit(t *testing.T) {
	pkg := untartest.Gzip(untartest.Tar(untartest.Entry{Name: "data", Size: 2 << 20}))
	sum := sha256.Sum256(pkg)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	_, srv := newFakeController(t, pkg)
	d, err := process.New(process.Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	newAgent := func() *Agent {
		a, err := New(Config{Name: "node-1", DataDir: dataDir, MaxUnpackedBytes: 5 << 20, Drivers: []driver.Driver{d}}, client.New(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.ln.Close() })
		return a
	}
	a := newAgent()
	root := func(id string) string { return filepath.Join(dataDir, "instances", id, "root") }

	if err := a.unpack(t.Context(), digest, root("one")); err != nil {
		t.Fatal(err)
	}
	if err := a.unpack(t.Context(), digest, root("two")); err != nil {
		t.Fatal(err)
	}
	err = a.unpack(t.Context(), digest, root("three"))
	if !errors.Is(err, untar.ErrTooLarge) || !strings.Contains(err.Error(), "limit of 5Mi") {
		t.Fatalf("a third copy = %v, want the node's limit of 5Mi named", err)
	}
	a.removeRoot(root("three"))
	a.removeInstanceDir(filepath.Dir(root("one")))
	if err := a.unpack(t.Context(), digest, root("three")); err != nil {
		t.Fatalf("after removing a copy: %v", err)
	}

	// Two copies are on disk: a new agent has room for none.
	a = newAgent()
	if used, want := a.unpacked.Used(), 2*(2<<20+untar.EntryCost); used != int64(want) {
		t.Errorf("a restarted agent counts %d bytes unpacked, want %d", used, want)
	}
	if err := a.unpack(t.Context(), digest, root("four")); !errors.Is(err, untar.ErrTooLarge) {
		t.Errorf("a copy past the limit after a restart = %v", err)
	}
}
