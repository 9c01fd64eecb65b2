// Package process is the process runtime: each instance is an OS process in
// its own process group and working directory, supervised by a `weft shim`
// that outlives the agent, with memory and CPU limits through cgroups (v2, or
// the v1 memory and cpu controllers on hybrid hosts). An instance on a
// virtual network runs in a network namespace of its own (instancenet),
// its ports relayed from the host; the others share the host's.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/cgroups"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/instancenet"
	"github.com/weftcloud/weft/internal/instancestats"
	"github.com/weftcloud/weft/internal/shim"
)

// Config configures the driver.
type Config struct {
	// ShimCommand starts a shim; the driver appends the instance directory.
	// Default: this executable with the argument "shim".
	ShimCommand []string
	// CgroupParent is the cgroup parent for instances (default "weft");
	// CgroupDisabled turns limits off.
	CgroupParent   string
	CgroupDisabled bool
	// IPAMDir and Host are for instances on a virtual network
	// (Spec.JoinNetwork), which run in a network namespace of their own
	// (package instancenet): the host's address allocations, shared with
	// the container runtime (default /run/weft/ipam), and the address
	// their ports are relayed from (default 127.0.0.1).
	IPAMDir string
	Host    string
	Logger  *slog.Logger
}

// Driver runs process instances.
type Driver struct {
	shim.Instances
	cfg     Config
	log     *slog.Logger
	cgroups *cgroups.Set
	stats   *instancestats.Sampler
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.GuestMonitor = (*Driver)(nil)
)

// New returns a process driver.
func New(cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if cfg.ShimCommand, err = shim.Command(cfg.ShimCommand); err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "weft"
	}
	if cfg.IPAMDir == "" {
		cfg.IPAMDir = "/run/weft/ipam"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	d := &Driver{cfg: cfg, log: cfg.Logger}
	d.Annotate = d.withOOM
	if !cfg.CgroupDisabled {
		var err error
		if d.cgroups, err = cgroups.Detect(cfg.CgroupParent); err != nil {
			d.log.Warn("instances run without memory and CPU limits", "reason", err)
			d.cgroups = nil
		}
	}
	d.stats = instancestats.New(d.cgroups, d.Dir)
	return d, nil
}

// Limits reports whether memory and CPU limits are enforced.
func (d *Driver) Limits() bool { return d.cgroups != nil }

// Name is "process".
func (d *Driver) Name() string { return api.RuntimeProcess }

// Start starts the instance through a new shim and returns once the child runs.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	if len(spec.Command) == 0 {
		return driver.Status{}, fmt.Errorf("process: start %s: no command", spec.ID)
	}
	if !filepath.IsAbs(spec.Dir) {
		return driver.Status{}, fmt.Errorf("process: start %s: the instance directory %q is not absolute", spec.ID, spec.Dir)
	}
	env := map[string]string{"PATH": DefaultPath, "HOME": spec.Dir}
	for k, v := range spec.Env {
		env[k] = v
	}
	ss := shim.Spec{Command: spec.Command, Dir: filepath.Join(spec.Dir, "root"), Env: env, LogMax: api.MaxLogBytes}
	if spec.Package == "" {
		ss.Dir = spec.Dir
	}
	if !strings.Contains(spec.Command[0], "/") {
		path, err := lookPath(spec.Command[0], env["PATH"], ss.Dir)
		if err != nil {
			return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		ss.Path = path
	}
	if d.cgroups != nil {
		procs, err := d.cgroups.Create(spec.ID, spec.CPU, spec.Memory)
		if err != nil {
			return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		ss.Cgroups = procs
	}
	d.Add(spec.ID, spec.Dir)
	instancenet.Close(d.cfg.IPAMDir, spec.Dir) // a previous run's
	if spec.JoinNetwork != nil {
		if err := d.ownNetwork(ctx, spec, &ss); err != nil {
			instancenet.Close(d.cfg.IPAMDir, spec.Dir)
			return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
	}
	st, err := shim.Launch(ctx, d.cfg.ShimCommand, spec.Dir, ss)
	if err != nil {
		instancenet.Close(d.cfg.IPAMDir, spec.Dir)
		return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	return d.withOOM(spec.ID, st), nil
}

// ownNetwork gives an instance on a virtual network a network namespace
// of its own, as the container runtime does, so that its network
// interface and address are its alone: the namespace, joined to its
// network (spec.JoinNetwork), where the shim starts it (seeing
// spec.ResolvConf at /etc/resolv.conf, see shim.WithResolvConf), and the
// relays of its ports and of the metadata service.
func (d *Driver) ownNetwork(ctx context.Context, spec driver.Spec, ss *shim.Spec) error {
	link, err := instancenet.Open(d.cfg.IPAMDir, spec.Dir, spec.ID)
	if err != nil {
		return err
	}
	if err := spec.JoinNetwork(ctx, link.NetnsPath()); err != nil {
		return err
	}
	ss.Netns, ss.ResolvConf = link.NetnsPath(), spec.ResolvConf
	ss.Forward, ss.Env = link.Relays(d.cfg.Host, spec.Ports, ss.Env)
	return nil
}

// DefaultPath is the PATH an instance gets unless its role's settings
// set one: where a bare command name such as "python3" is looked up.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// lookPath finds the program a bare command name names, as a process
// supervisor or execvp does: in each folder of pathEnv in turn, where an
// empty or relative folder is taken in dir, the instance's working
// directory. A name with a slash is not looked up: it stays relative to
// the package (the shim joins it to dir).
func lookPath(name, pathEnv, dir string) (string, error) {
	for _, d := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %s (a program in the package is named with a slash: \"./%s\")", name, pathEnv, name)
}

// withOOM names the out-of-memory kill a failed exit was.
func (d *Driver) withOOM(id string, st driver.Status) driver.Status {
	if st.Exited && st.ExitCode != 0 && d.cgroups != nil && d.cgroups.OOMKilled(id) {
		st.Reason = "out of memory"
	}
	return st
}

// Stop sends SIGTERM to the instance's process group, and SIGKILL after grace.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	err := d.StopWith(ctx, id, grace, func(pid int, sig syscall.Signal) { syscall.Kill(-pid, sig) })
	if err != nil {
		return fmt.Errorf("process: stop %s: %w", id, err)
	}
	return nil
}

var _ driver.Execer = (*Driver)(nil)

// Exec runs cmd as the instance's own command runs: in its working
// directory, with its environment, a bare name looked up on its PATH, and
// in its cgroups. It waits for cmd's whole process group, which it kills
// when ctx ends.
func (d *Driver) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	if len(cmd) == 0 {
		return -1, fmt.Errorf("process: exec in %s: no command", id)
	}
	dir, err := d.Dir(id)
	if err != nil {
		return -1, fmt.Errorf("process: exec in %s: %w", id, err)
	}
	ss, err := shim.ReadSpec(dir)
	if err != nil {
		return -1, fmt.Errorf("process: exec in %s: %w", id, err)
	}
	path := cmd[0]
	if !strings.Contains(path, "/") {
		if path, err = lookPath(path, ss.Env["PATH"], ss.Dir); err != nil {
			return -1, fmt.Errorf("process: exec in %s: %w", id, err)
		}
	} else if !filepath.IsAbs(path) {
		path = filepath.Join(ss.Dir, path)
	}
	c := exec.Command(path, cmd[1:]...)
	c.Args[0] = cmd[0]
	c.Dir = ss.Dir
	for k, v := range ss.Env {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Stdout, c.Stderr = stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if ss.ResolvConf != "" {
		shim.WithResolvConf(c, ss.ResolvConf, d.cfg.ShimCommand)
	}
	if err := shim.StartIn(ss.Netns, c); err != nil {
		return -1, fmt.Errorf("process: exec in %s: %w", id, err)
	}
	for _, procs := range ss.Cgroups {
		// Best effort: without it the command runs, only outside the limits.
		os.WriteFile(procs, []byte(strconv.Itoa(c.Process.Pid)), 0o644)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err = c.Wait()
	close(done)
	if ctx.Err() != nil {
		return -1, fmt.Errorf("process: exec in %s: %w", id, ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("process: exec in %s: %w", id, err)
	}
	return 0, nil
}

// GuestFigures reads the instance's CPU and memory from its cgroup and
// its folder's disk use (instancestats.Sampler.Figures says how); it
// fails without cgroups.
func (d *Driver) GuestFigures(ctx context.Context, id string) (driver.GuestFigures, error) {
	return d.stats.Figures(id)
}

// Remove forgets a stopped instance and deletes its cgroups.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if dir, ok := d.Forget(id); ok {
		instancenet.Close(d.cfg.IPAMDir, dir)
	}
	d.stats.Forget(id)
	if d.cgroups != nil {
		return d.cgroups.Remove(id)
	}
	return nil
}
