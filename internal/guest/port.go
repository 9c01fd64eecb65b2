package guest

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// rechecked reads and writes the port with a deadline, and when it passes
// simply tries again: each try is a system call that looks at the port's
// queues itself, where waiting for the poller alone depends on the
// notification of each change reaching the guest. Under load in software
// emulation guests have been seen with the host's requests in their
// buffers and nobody reading them, the VM running, for good: with the
// queues' event indexes, a lost notification is never followed by
// another. The host pings every second, so a read that waits longer than
// every is rare, and one that then finds data at once is logged.
type rechecked struct {
	f     *os.File
	every time.Duration
	log   *slog.Logger
}

func (r rechecked) Read(p []byte) (int, error) {
	for waited := false; ; waited = true {
		r.f.SetReadDeadline(time.Now().Add(r.every))
		began := time.Now()
		n, err := r.f.Read(p)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if waited && n > 0 && time.Since(began) < 10*time.Millisecond {
				r.log.Warn("the port had data the kernel did not signal", "bytes", n)
			}
			return n, err
		}
	}
}

func (r rechecked) Write(p []byte) (int, error) {
	written := 0
	for {
		r.f.SetWriteDeadline(time.Now().Add(r.every))
		n, err := r.f.Write(p[written:])
		written += n
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
	}
}

// timerless says whether the kernel runs CPU 0 without a clock event
// device: its tick device there names none. In software emulation the
// guest kernel calibrates its local APIC timer at boot against the TSC;
// on a loaded host that can fail ("APIC frequency too slow"), and with one
// CPU and no other timer (microvm has no PIT or HPET) nothing that sleeps
// wakes up again. The Go runtime's sysmon is among them: a goroutine
// blocked in a system call (the workload's wait) then keeps the only P,
// and the agent answers nothing more. False when the kernel does not say.
func timerless(clockEvents string) bool {
	b, err := os.ReadFile(filepath.Join(clockEvents, "clockevent0", "current_device"))
	return err == nil && strings.TrimSpace(string(b)) == ""
}
