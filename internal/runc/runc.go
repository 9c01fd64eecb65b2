// Package runc drives the runc binary: it writes an OCI bundle's
// config.json from what an instance needs and runs runc's verbs. It is
// the only package that imports the runtime spec.
package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is one runc binary with its state directory.
type Runtime struct {
	Binary string // default "runc" from PATH
	Root   string // runc's --root: where it keeps container state
}

// Resolve returns r with the binary's absolute path, or an error when
// runc cannot be found.
func (r Runtime) Resolve() (Runtime, error) {
	path, err := exec.LookPath(r.binary())
	if err != nil {
		return r, err
	}
	r.Binary, err = filepath.Abs(path)
	return r, err
}

func (r Runtime) binary() string {
	if r.Binary == "" {
		return "runc"
	}
	return r.Binary
}

// RunDetached returns the command line that creates and starts container
// id from bundle, writes its init's PID to pidFile and exits (the
// container's stdio is the caller's).
func (r Runtime) RunDetached(id, bundle, pidFile string) []string {
	return []string{r.binary(), "--root", r.Root, "run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id}
}

// Delete removes container id, killing it first if it still runs; a
// container runc does not know is not an error.
func (r Runtime) Delete(ctx context.Context, id string) error {
	out, err := exec.CommandContext(ctx, r.binary(), "--root", r.Root, "delete", "--force", id).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") {
		return fmt.Errorf("runc delete %s: %s", id, firstLine(out, err))
	}
	return nil
}

// Exec runs cmd in container id with the container's environment, user
// and working directory, and returns its exit code.
func (r Runtime) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	args := append([]string{"--root", r.Root, "exec", id}, cmd...)
	c := exec.CommandContext(ctx, r.binary(), args...)
	var runcErr bytes.Buffer
	c.Stdout, c.Stderr = stdout, io.MultiWriter(stderr, &runcErr)
	err := c.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		// runc says why in the last line when it could not run cmd at all.
		if exit.ExitCode() == 255 || strings.Contains(runcErr.String(), "level=error") {
			return -1, fmt.Errorf("runc exec: %s", firstLine(runcErr.Bytes(), err))
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("runc exec: %w", err)
	}
	return 0, nil
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return err.Error()
	}
	return s
}

// Container is what a bundle's config says about one container.
type Container struct {
	Args     []string
	Env      []string // KEY=value
	Cwd      string
	User     string // "uid[:gid]", numeric; "" is root
	Hostname string
	// Netns is the path of the network namespace to join; "" gives the
	// container a new, empty one.
	Netns string
	// CgroupsPath is the container's cgroup, relative to each hierarchy's
	// root ("/weft/ID").
	CgroupsPath string
	Memory      int64   // bytes; 0: no limit
	CPU         float64 // cores; 0: no limit
	Pids        int64   // 0: no limit
	// Binds are host folders mounted into the container, in order.
	Binds []Bind
}

// Bind mounts the host folder Source at Target in the container.
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// capabilities are Docker's defaults: what a container's root may do
// without reaching outside the container.
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// WriteBundle writes bundle/config.json for c, with the root filesystem at
// bundle/rootfs (which the caller prepares).
func WriteBundle(bundle string, c Container) error {
	uid, gid, err := parseUser(c.User)
	if err != nil {
		return err
	}
	cwd := c.Cwd
	if cwd == "" {
		cwd = "/"
	}
	resources := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if c.Memory > 0 {
		limit := c.Memory
		resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	}
	if c.CPU > 0 {
		period := uint64(100000)
		quota := int64(c.CPU * float64(period))
		resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if c.Pids > 0 {
		resources.Pids = &specs.LinuxPids{Limit: c.Pids}
	}
	network := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: c.Netns}
	spec := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: c.Args,
			Env:  c.Env,
			Cwd:  cwd,
			User: specs.User{UID: uid, GID: gid},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: capabilities, Effective: capabilities, Permitted: capabilities,
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: c.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: c.CgroupsPath,
			Resources:   resources,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, network, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	for _, b := range c.Binds {
		mode := "rw"
		if b.ReadOnly {
			mode = "ro"
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: b.Target, Type: "bind", Source: b.Source, Options: []string{"rbind", mode, "nosuid", "nodev"}})
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644)
}

// parseUser reads "uid" or "uid:gid". Names would need the image's
// /etc/passwd, which images made for Weft rarely have.
func parseUser(user string) (uint32, uint32, error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("runc: user %q: only numeric uid[:gid] is supported", user)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("runc: user %q: only numeric uid[:gid] is supported", user)
		}
	}
	return uint32(uid), uint32(gid), nil
}
