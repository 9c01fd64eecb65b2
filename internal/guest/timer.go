package guest

import (
	"os"
	"path/filepath"
	"strings"
)

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
