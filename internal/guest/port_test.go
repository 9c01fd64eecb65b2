package guest

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRecheckedWaitsPastItsDeadlines: a read and a write that wait many
// times longer than the recheck interval end with all their data, as if
// there were no deadline.
func TestRecheckedWaitsPastItsDeadlines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	quiet := slog.New(slog.DiscardHandler)
	reader := rechecked{f: r, every: 5 * time.Millisecond, log: quiet}
	writer := rechecked{f: w, every: 5 * time.Millisecond, log: quiet}

	go func() {
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte("late\n"))
	}()
	buf := make([]byte, 16)
	n, err := reader.Read(buf)
	if err != nil || string(buf[:n]) != "late\n" {
		t.Fatalf("read = %q, %v; want the line written 10 deadlines later", buf[:n], err)
	}

	// A write larger than the pipe holds, drained only after many deadlines.
	big := bytes.Repeat([]byte("x"), 1<<20)
	r.SetReadDeadline(time.Time{}) // the one reader.Read left
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		b, _ := io.ReadAll(io.LimitReader(r, int64(len(big))))
		got <- b
	}()
	n, err = writer.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("write = %d, %v; want all %d bytes", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Errorf("the reader got %d bytes, want the %d written", len(b), len(big))
	}

	// A closed file ends them at once.
	r.Close()
	if _, err := reader.Read(buf); err == nil {
		t.Error("read of a closed file: no error")
	}
}

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
