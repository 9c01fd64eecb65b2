package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/internal/qmp"
)

// kvmCPUModels are the CPU models tried under KVM, best first. Nested KVM
// (a node that is itself a VM) may refuse some MSRs of the host's CPU,
// which QEMU only finds out when the first vCPU runs, and then aborts:
// IA32_ARCH_CAPABILITIES is the usual one, and the guest does without it
// (it only assumes the CPU has every vulnerability it could have).
var kvmCPUModels = []string{"host", "host,-arch-capabilities"}

// probeKVM finds a CPU model QEMU can run under KVM here: it starts a
// machine with no guest for each model in turn, checks that KVM offers the
// guest the host CPU's basic features, and lets the CPU run for a moment.
// It returns an error when none works.
func probeKVM(ctx context.Context, qemuBin string) (string, error) {
	dir, err := os.MkdirTemp("", "weft-kvm")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var errs []error
	for _, model := range kvmCPUModels {
		err := tryKVM(ctx, qemuBin, filepath.Join(dir, model+".sock"), model)
		if err == nil {
			return model, nil
		}
		errs = append(errs, fmt.Errorf("-cpu %s: %w", model, err))
	}
	return "", errors.Join(errs...)
}

func tryKVM(ctx context.Context, qemuBin, sock, model string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin, "-M", "microvm", "-enable-kvm", "-cpu", model,
		"-nodefaults", "-no-user-config", "-display", "none", "-m", "16", "-S",
		"-qmp", "unix:"+escape(sock)+",server=on,wait=off")
	out := &lastOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	qctx, qcancel := context.WithCancel(ctx) // ends QMP's wait when QEMU dies
	defer qcancel()
	go func() {
		cmd.Wait()
		close(exited)
		qcancel()
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	q, err := dialQMP(qctx, sock)
	if err != nil {
		select {
		case <-exited:
			return fmt.Errorf("QEMU failed: %s", out)
		default:
			return fmt.Errorf("%w: %s", err, out)
		}
	}
	defer q.Close()
	if err := checkCPUFeatures(ctx, q); err != nil {
		return err
	}
	if err := q.Cont(ctx); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	select {
	case <-exited:
		return fmt.Errorf("QEMU failed: %s", out)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := q.QueryStatus(ctx); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	q.Quit(ctx)
	return nil
}

// baseFeatures are CPU features (as /proc/cpuinfo names them, and as QEMU
// does) that every x86-64 CPU of the last fifteen years has. A KVM that
// offers the guest none of them while the host CPU has them is an
// incomplete nested KVM, on which guest kernels crash.
var baseFeatures = map[string]string{"pni": "pni", "ssse3": "ssse3", "sse4_1": "sse4.1", "sse4_2": "sse4.2", "popcnt": "popcnt"}

// checkCPUFeatures compares the features KVM offers (QEMU's "host" model)
// with the host CPU's.
func checkCPUFeatures(ctx context.Context, q *qmp.Client) error {
	var expansion struct {
		Model struct {
			Props map[string]any `json:"props"`
		} `json:"model"`
	}
	err := q.Execute(ctx, "query-cpu-model-expansion", map[string]any{"type": "full", "model": map[string]any{"name": "host"}}, &expansion)
	if err != nil {
		return err
	}
	host := hostCPUFlags()
	var missing []string
	for flag, prop := range baseFeatures {
		if host[flag] && expansion.Model.Props[prop] != true {
			missing = append(missing, prop)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("KVM does not offer guests the host CPU's %s", strings.Join(missing, ", "))
	}
	return nil
}

// hostCPUFlags are the flags of the host's first CPU in /proc/cpuinfo.
func hostCPUFlags() map[string]bool {
	data, _ := os.ReadFile("/proc/cpuinfo")
	flags := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "flags" {
			for _, f := range strings.Fields(value) {
				flags[f] = true
			}
			break
		}
	}
	return flags
}

// lastOutput keeps the end of what a process wrote.
type lastOutput struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lastOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 4096 {
		l.buf = l.buf[len(l.buf)-4096:]
	}
	return len(p), nil
}

func (l *lastOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := splitNonEmpty(string(l.buf))
	if len(lines) == 0 {
		return "no output"
	}
	return lines[len(lines)-1]
}
