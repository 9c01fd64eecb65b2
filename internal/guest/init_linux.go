package guest

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for QEMU user-mode networking, overridden by weft.ip= and weft.gw=
// on the kernel command line (weft.ip=none leaves eth0 alone).
const (
	defaultGuestIP = "10.0.2.15/24"
	defaultGateway = "10.0.2.2"
)

// mountSpec is one file system PID 1 mounts when it is not mounted yet.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var initMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// setupInit does what PID 1 must before anything else: mounts, environment,
// hostname, and becoming the reaper of orphans. It returns the console to
// write to (nil when /dev/console cannot be opened). Failures are logged, not
// fatal: a half-set-up guest that answers the host is better than a panic.
func setupInit(log *slog.Logger) *os.File {
	mounted := mountPoints()
	for _, m := range initMounts {
		if mounted[m.target] {
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			log.Warn("mkdir", "path", m.target, "err", err)
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && err != unix.EBUSY {
			log.Warn("mount", "target", m.target, "fstype", m.fstype, "err", err)
			continue
		}
		if m.target == "/proc" {
			mounted = mountPoints() // now readable: the initrd may have moved some here
		}
	}
	if os.Getenv("PATH") == "" || os.Getpid() == 1 {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if os.Getenv("HOME") == "" || os.Getenv("HOME") == "/" {
		os.Setenv("HOME", "/root")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("become subreaper", "err", err)
	}
	// Go's default for these is to exit, and PID 1 must not. Catch them
	// rather than ignore them: ignored signals stay ignored in the children
	// it execs, and a workload that ignores SIGTERM cannot be stopped gently.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	go func() {
		for s := range sigs {
			log.Info("ignoring signal", "signal", s)
		}
	}()

	args := kernelArgs()
	host := args["weft.hostname"]
	if host == "" {
		if b, err := os.ReadFile("/etc/hostname"); err == nil {
			host = strings.TrimSpace(string(b))
		}
	}
	if host != "" {
		if err := unix.Sethostname([]byte(host)); err != nil {
			log.Warn("set hostname", "err", err)
		}
	}
	console, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	return console
}

// mountPoints returns the mount points in /proc/self/mounts.
func mountPoints() map[string]bool {
	out := map[string]bool{}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 {
			out[fields[1]] = true
		}
	}
	return out
}

// kernelArgs parses /proc/cmdline into key=value pairs (flags map to "").
func kernelArgs() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	out := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

// configureNetwork brings up lo and gives the user-mode networking
// interface (eth0) its static address, with busybox ip; on a virtual
// network (weft.vnet.* on the kernel command line, see vnet.go) it also
// gives the network's interface its address and writes resolv.conf. The
// interfaces appear once their driver probed, so it waits for them, at
// most 10 s.
func configureNetwork(ctx context.Context, procs *children, log *slog.Logger) {
	args := kernelArgs()
	ip, gw := defaultGuestIP, defaultGateway
	if v, ok := args["weft.ip"]; ok {
		ip = v
	}
	if v, ok := args["weft.gw"]; ok {
		gw = v
	}
	vn, err := parseVNet(args)
	if err != nil {
		log.Warn("virtual network: the kernel command line", "err", err)
	}
	run := func(argv ...string) error {
		cmd := exec.CommandContext(ctx, "ip", argv...)
		if err := procs.start(cmd); err != nil {
			return err
		}
		err := cmd.Wait()
		procs.done(cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("ip %s: %w", strings.Join(argv, " "), err)
		}
		return nil
	}
	if err := run("link", "set", "lo", "up"); err != nil {
		log.Warn("network", "err", err)
	}
	userMode := ip != "" && ip != "none" && ip != "dhcp"
	if !userMode && vn == nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	var user, private string
	for {
		var ok bool
		if user, private, ok = pickInterfaces(interfaceMACs(), vn); ok {
			break
		}
		if time.Now().After(deadline) {
			log.Warn("network: interfaces missing", "user", user, "vnet", private)
			if private == "" {
				vn = nil
			}
			if _, ok := interfaceMACs()[user]; !ok || user == private {
				userMode = false
			}
			if !userMode && vn == nil {
				return
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	var steps [][]string
	if vn != nil {
		// Before the user-mode interface: the workload may start once
		// the host sees this address (the driver waits for it).
		steps = append(steps, []string{"addr", "add", vn.Addr.String(), "dev", private}, []string{"link", "set", private, "up"})
		if err := os.WriteFile("/etc/resolv.conf", []byte(vn.resolvConf()), 0o644); err != nil {
			log.Warn("virtual network: resolv.conf", "err", err)
		}
	}
	if userMode {
		steps = append(steps, []string{"addr", "add", ip, "dev", user}, []string{"link", "set", user, "up"})
		if gw != "" && gw != "none" {
			steps = append(steps, []string{"route", "add", "default", "via", gw})
		}
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			log.Warn("network", "err", err)
			return
		}
	}
	log.Info("network up", "user", user, "address", ip, "gateway", gw, "vnet", private)
}

// interfaceMACs lists the machine's interfaces but lo, name → MAC.
func interfaceMACs() map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		if e.Name() == "lo" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/sys/class/net", e.Name(), "address")); err == nil {
			out[e.Name()] = strings.ToLower(strings.TrimSpace(string(b)))
		}
	}
	return out
}

// reapOrphans reaps zombie children the agent did not start itself (orphans
// re-parented to PID 1 or to the subreaper) until ctx ends.
func reapOrphans(ctx context.Context, procs *children) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-tick.C:
		}
		procs.reapOrphans()
	}
}

// reapOrphans waits for every zombie child of this process that is not
// tracked. Wait-any (wait4(-1)) would steal the exit status from os/exec,
// so it finds the zombies in /proc and waits for each by pid.
func (c *children) reapOrphans() {
	c.mu.Lock()
	defer c.mu.Unlock()
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || c.pids[pid] {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] != "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}
