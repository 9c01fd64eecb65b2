package guest

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHelloSaysWhenTheGuestHasNoTimer: the hello carries whether CPU 0's
// tick device has a clock event device, as the kernel's sysfs says.
func TestHelloSaysWhenTheGuestHasNoTimer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		device  *string // nil: no such file
		noTimer bool
	}{
		{"lapic", ptr("lapic\n"), false},
		{"none", ptr(""), true},
		{"unknown", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.device != nil {
				os.MkdirAll(filepath.Join(dir, "clockevent0"), 0o755)
				if err := os.WriteFile(filepath.Join(dir, "clockevent0", "current_device"), []byte(*tc.device), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			opts := newFakeMachine().options(io.Discard)
			opts.ClockEvents = dir
			c := serve(t, New(opts), true)
			hello, err := c.Ready(ctxTimeout(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if hello.NoTimer != tc.noTimer {
				t.Errorf("hello.NoTimer = %v, want %v", hello.NoTimer, tc.noTimer)
			}
		})
	}
}

func ptr(s string) *string { return &s }
