package shim

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// A process instance on a virtual network shares the host's files, and so
// its /etc/resolv.conf, which names the host's DNS servers and not the
// network's. Its command (and every command exec'd in it) is therefore
// started in a mount namespace of its own, in which only /etc/resolv.conf
// differs: the instance's file is bind-mounted over it. Go cannot make the
// mount between fork and exec, nor can a running Go program move into a
// new mount namespace (unshare(CLONE_NEWNS) needs a single-threaded
// caller), so the command is cloned into the new namespace as the shim's
// helper (`weft shim --with-resolv-conf FILE -- PROGRAM ARGV...`), which
// makes the mount and then executes the program in its place: same PID,
// environment, working directory, cgroups and network namespace.

// resolvConfArg starts the helper's arguments.
const resolvConfArg = "--with-resolv-conf"

// WithResolvConf makes cmd, not started yet, see file at /etc/resolv.conf:
// it starts self (the shim's command, as Launch takes it) as the helper,
// in a new mount namespace, and the helper executes cmd's program. The
// namespace is the host's slave: it receives the mounts and unmounts the
// host makes later under the host's shared mounts (every mount where
// systemd made "/" shared; in a container whose mounts are private, those
// on shared mount points, as drives are mounted, see internal/drive); the
// bind mount never reaches the host.
func WithResolvConf(cmd *exec.Cmd, file string, self []string) {
	args := append(slices.Clone(self[1:]), resolvConfArg, file, "--", cmd.Path)
	cmd.Args = append([]string{self[0]}, append(args, cmd.Args...)...)
	cmd.Path = self[0]
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNS
}

// selfCommand is the command that started this shim, less its directory:
// how it starts itself as the helper (/proc/self/exe: the binary it runs,
// wherever it came from).
func selfCommand() []string {
	return append([]string{"/proc/self/exe"}, os.Args[1:len(os.Args)-1]...)
}

// withResolvConf is the helper: args are FILE -- PROGRAM ARGV... It
// returns only when it fails.
func withResolvConf(args []string) int {
	if len(args) < 4 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "usage: weft shim "+resolvConfArg+" FILE -- PROGRAM ARGV0 [ARG]...")
		return 2
	}
	file, program, argv := args[0], args[2], args[3:]
	if err := bindResolvConf(file); err != nil {
		fmt.Fprintf(os.Stderr, "weft shim: %v\n", err)
		return 127
	}
	err := unix.Exec(program, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "weft shim: run %s: %v\n", argv[0], err)
	return 127
}

// bindResolvConf mounts file, read-only, over /etc/resolv.conf in this
// process's mount namespace, which must be its own: first the namespace
// stops sharing mounts back with the host's (a slave receives, never
// sends), so that the bind stays in it.
func bindResolvConf(file string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make the instance's mount namespace a slave of the host's: %w", err)
	}
	if err := unix.Mount(file, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount %s over /etc/resolv.conf (the host needs one): %w", file, err)
	}
	if err := unix.Mount("", "/etc/resolv.conf", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("make the instance's /etc/resolv.conf read-only: %w", err)
	}
	return nil
}
