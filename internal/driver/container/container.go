// Package container is the container runtime: each instance is an OCI
// container run by runc, on an overlay of the node's cached image (the
// writable layer is thrown away with the instance), in its own network
// namespace whose ports the shim relays from the host, with memory, CPU
// and pids limits in its own cgroup. runc runs detached under a `weft
// shim`, which adopts the container's init so that it outlives the agent.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/cgroups"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/instancenet"
	"github.com/weftcloud/weft/internal/instancestats"
	"github.com/weftcloud/weft/internal/runc"
	"github.com/weftcloud/weft/internal/shim"
)

// Config configures the driver.
type Config struct {
	// ShimCommand starts a shim; default: this executable with "shim".
	ShimCommand []string
	// Runc is the runc binary; its Root defaults to /run/weft/runc.
	Runc runc.Runtime
	// IPAMDir holds the host's container address allocations; every agent
	// on a host must share it. Default /run/weft/ipam.
	IPAMDir string
	// Host is the address the role's ports are relayed from: the agent's
	// host address. Default 127.0.0.1.
	Host string
	// CgroupParent is the parent cgroup of containers (default "weft").
	CgroupParent string
	// Pids is the default pids limit of a container (default 4096).
	Pids   int64
	Logger *slog.Logger
}

// Driver runs container instances.
type Driver struct {
	shim.Instances
	cfg     Config
	log     *slog.Logger
	cgroups *cgroups.Set // to tell an OOM kill; nil when undetectable
	stats   *instancestats.Sampler
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.Execer       = (*Driver)(nil)
	_ driver.GuestMonitor = (*Driver)(nil)
)

// Files of an instance directory, which is also the OCI bundle.
const (
	rootfsDir = "rootfs" // the overlay the container sees as /
	upperDir  = "upper"  // the writable layer
	workDir   = "work"   // overlayfs's scratch space
	pidFile   = "container.pid"
)

// New returns a container driver, or an error when runc is missing or the
// host cannot run containers.
func New(cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if cfg.Runc, err = cfg.Runc.Resolve(); err != nil {
		return nil, fmt.Errorf("container: runc: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("container: runc needs root")
	}
	if cfg.ShimCommand, err = shim.Command(cfg.ShimCommand); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	if cfg.Runc.Root == "" {
		cfg.Runc.Root = "/run/weft/runc"
	}
	if cfg.IPAMDir == "" {
		cfg.IPAMDir = "/run/weft/ipam"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "weft"
	}
	if cfg.Pids == 0 {
		cfg.Pids = 4096
	}
	d := &Driver{cfg: cfg, log: cfg.Logger}
	d.Annotate = d.withOOM
	cg, err := cgroups.Detect(cfg.CgroupParent)
	if err != nil {
		d.log.Warn("out-of-memory kills will show as SIGKILL", "reason", err)
	} else {
		d.cgroups = cg
	}
	d.stats = instancestats.New(d.cgroups, d.Dir)
	return d, nil
}

// Name is "container".
func (d *Driver) Name() string { return api.RuntimeContainer }

// Limits reports whether the driver can tell an out-of-memory kill.
func (d *Driver) Limits() bool { return d.cgroups != nil }

// Start prepares the bundle (overlay root, network, config.json) and
// starts the container under a shim.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	st, err := d.start(ctx, spec)
	if err != nil {
		d.cleanup(context.WithoutCancel(ctx), spec.ID, spec.Dir)
		return driver.Status{}, fmt.Errorf("container: start %s: %w", spec.ID, err)
	}
	return st, nil
}

func (d *Driver) start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	if !filepath.IsAbs(spec.Dir) {
		return driver.Status{}, fmt.Errorf("the instance directory %q is not absolute", spec.Dir)
	}
	var img api.Image
	if err := atomicfile.ReadJSON(filepath.Join(spec.ImageDir, api.ImageMetaFile), &img); err != nil {
		return driver.Status{}, fmt.Errorf("image %q is not on this node: %w", spec.Image, err)
	}
	if img.Type != api.ImageContainer || img.Container == nil {
		return driver.Status{}, fmt.Errorf("image %q is a %s image, not a container image", img.Name, img.Type)
	}
	args := append(append([]string(nil), img.Container.Entrypoint...), img.Container.Cmd...)
	if len(spec.Command) > 0 {
		args = spec.Command // the role's command replaces the image's, as Kubernetes' command does
	}
	if len(args) == 0 {
		return driver.Status{}, fmt.Errorf("image %q has no entrypoint and the role no command", img.Name)
	}
	// A restart starts from the image again, like a new container.
	d.cleanup(ctx, spec.ID, spec.Dir)
	d.Add(spec.ID, spec.Dir)

	if err := mountOverlay(filepath.Join(spec.ImageDir, "rootfs"), spec.Dir); err != nil {
		return driver.Status{}, err
	}
	netw, err := instancenet.Open(d.cfg.IPAMDir, spec.Dir, spec.ID)
	if err != nil {
		return driver.Status{}, err
	}
	if spec.JoinNetwork != nil {
		if err := spec.JoinNetwork(ctx, netw.NetnsPath()); err != nil {
			return driver.Status{}, err
		}
	}
	relays, env := netw.Relays(d.cfg.Host, spec.Ports, spec.Env)
	c := runc.Container{
		Args:        args,
		Env:         environment(img.Container.Env, env),
		Cwd:         img.Container.WorkingDir,
		User:        img.Container.User,
		Hostname:    hostname(spec.ID),
		Netns:       netw.NetnsPath(),
		CgroupsPath: "/" + d.cfg.CgroupParent + "/" + spec.ID,
		Memory:      spec.Memory,
		CPU:         spec.CPU,
		Pids:        d.cfg.Pids,
	}
	for _, m := range spec.Mounts {
		c.Binds = append(c.Binds, runc.Bind{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	if err := runc.WriteBundle(spec.Dir, c); err != nil {
		return driver.Status{}, err
	}
	ss := shim.Spec{
		Command: d.cfg.Runc.RunDetached(spec.ID, spec.Dir, filepath.Join(spec.Dir, pidFile)),
		Dir:     spec.Dir,
		LogMax:  api.MaxLogBytes,
		PIDFile: filepath.Join(spec.Dir, pidFile),
	}
	ss.Forward = relays
	st, err := shim.Launch(ctx, d.cfg.ShimCommand, spec.Dir, ss)
	if err != nil {
		return driver.Status{}, err
	}
	return d.withOOM(spec.ID, st), nil
}

// environment is the image's variables overridden by the instance's.
func environment(image []string, instance map[string]string) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	env = append(env, image...)
	for k, v := range instance {
		env = append(env, k+"="+v)
	}
	return env // later entries win, in runc as in execve's users
}

func hostname(id string) string {
	if len(id) > 63 {
		return id[:63]
	}
	return id
}

func mountOverlay(lower, dir string) error {
	if _, err := os.Stat(lower); err != nil {
		return fmt.Errorf("image root filesystem: %w", err)
	}
	for _, sub := range []string{upperDir, workDir, rootfsDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(dir, upperDir), filepath.Join(dir, workDir))
	if err := unix.Mount("overlay", filepath.Join(dir, rootfsDir), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount the image's overlay: %w", err)
	}
	return nil
}

// cleanup removes what a previous run of the instance left: the runc
// container, the overlay and its writable layer, the network.
func (d *Driver) cleanup(ctx context.Context, id, dir string) {
	if err := d.cfg.Runc.Delete(ctx, id); err != nil {
		d.log.Warn("removing a container", "instance", id, "err", err)
	}
	if err := unix.Unmount(filepath.Join(dir, rootfsDir), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		d.log.Warn("unmounting a container's root", "instance", id, "err", err)
	}
	for _, sub := range []string{upperDir, workDir} {
		os.RemoveAll(filepath.Join(dir, sub))
	}
	instancenet.Close(d.cfg.IPAMDir, dir)
}

// withOOM names the out-of-memory kill a failed exit was; the container's
// cgroup lasts until runc deletes the container.
func (d *Driver) withOOM(id string, st driver.Status) driver.Status {
	if st.Exited && st.ExitCode != 0 && d.cgroups != nil && d.cgroups.OOMKilled(id) {
		st.Reason = "out of memory"
	}
	return st
}

// Stop sends SIGTERM to the container's init, and SIGKILL after grace. An
// init that installed no handler for SIGTERM ignores it, as PID 1 does.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := d.StopWith(ctx, id, grace, func(pid int, sig syscall.Signal) { syscall.Kill(pid, sig) }); err != nil {
		return fmt.Errorf("container: stop %s: %w", id, err)
	}
	return nil
}

// Remove deletes the container, its overlay and its network.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if dir, ok := d.Forget(id); ok {
		d.cleanup(ctx, id, dir)
	}
	d.stats.Forget(id)
	return nil
}

// GuestFigures reads the container's CPU and memory from the cgroup runc
// made for it, and the disk used by its instance folder (its writable
// layer, not the image below it; instancestats.Sampler.Figures says how).
func (d *Driver) GuestFigures(ctx context.Context, id string) (driver.GuestFigures, error) {
	return d.stats.Figures(id)
}

// Exec runs cmd in the running container.
func (d *Driver) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	st, err := d.Inspect(ctx, id)
	if err != nil {
		return -1, err
	}
	if !st.Running {
		return -1, fmt.Errorf("container: exec in %s: not running", id)
	}
	return d.cfg.Runc.Exec(ctx, id, cmd, stdout, stderr)
}

// Sweep removes every container, overlay and network that instances under
// root (an agent's data folder) still hold, for when their agent is gone
// for good: a node being wiped, or a test harness tearing a cluster down.
// Their processes must already be dead or about to be killed by runc.
func Sweep(ctx context.Context, root string) {
	d, err := New(Config{ShimCommand: []string{"true"}})
	if err != nil {
		return
	}
	filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != "config.json" {
			return nil
		}
		dir := filepath.Dir(path)
		if _, err := os.Stat(filepath.Join(dir, rootfsDir)); err == nil {
			d.cleanup(ctx, filepath.Base(dir), dir)
			return filepath.SkipDir
		}
		return nil
	})
}
