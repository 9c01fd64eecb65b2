package guest

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMountRefusesWhatItCannotMount: a mount request names a disk by its
// serial and a clean absolute folder other than /; anything else, and a
// serial no disk has, is an error that says which, and nothing is made.
// (The mount itself is exercised in a real guest: e2e.TestVMRole.)
func TestMountRefusesWhatItCannotMount(t *testing.T) {
	a := New(newFakeMachine().options(io.Discard))
	c := serve(t, a, false)
	ctx := ctxTimeout(t, 20*time.Second)
	target := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct{ serial, path, want string }{
		{"weft-drive-0", "/", "not a clean absolute path"},
		{"weft-drive-0", "data", "not a clean absolute path"},
		{"weft-drive-0", "/data/../etc", "not a clean absolute path"},
		{"", target, "no disk serial"},
		{"weft-drive-no-such", target, `no disk with serial "weft-drive-no-such"`},
	} {
		err := c.Mount(ctx, tc.serial, tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Mount(%q, %q): %v, want an error saying %q", tc.serial, tc.path, err, tc.want)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused mount made its folder: %v", err)
	}
}
