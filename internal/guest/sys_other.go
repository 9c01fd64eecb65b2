//go:build !linux

package guest

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// The guest agent runs in Linux VMs only; elsewhere these stubs keep the
// package, and so the host-side Client, building.

var errNotLinux = errors.New("guest: only supported on Linux")

func setClock(time.Time) error                                  { return errNotLinux }
func syncDisks()                                                {}
func powerOff(bool) error                                       { return errNotLinux }
func uptime() time.Duration                                     { return 0 }
func loadavg() [3]float64                                       { return [3]float64{} }
func setProcessGroup(*exec.Cmd)                                 {}
func resolvePort(path string) string                            { return path }
func setupInit(*slog.Logger) *os.File                           { return nil }
func reapOrphans(context.Context, *children)                    {}
func configureNetwork(context.Context, *children, *slog.Logger) {}

func killGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

func diskSpace(string) (total, free uint64) { return 0, 0 }

func mountDisk(string, string) error { return errNotLinux }

func setRoutes(string, string, []netip.Prefix, netip.Addr) error { return errNotLinux }
