// Package shim supervises one instance from outside the agent: `weft shim
// DIR` starts the instance's process, owns its output (a size-capped log)
// and records how it ended, so that an agent can restart without touching
// its instances. The process and container runtimes both run on it; the
// driver side (Launch, Inspect, Wait, Stop, Logs) reads what it records.
package shim

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/procstat"
)

// Files the shim keeps in an instance's directory.
const (
	specFile = "spec.json"  // what to run, written by the driver
	pidFile  = "pid.json"   // the running child, written by the shim
	exitFile = "exit.json"  // how the child ended, written by the shim
	LogFile  = "output.log" // stdout and stderr, rotated to output.log.1
)

// Spec is what the driver hands the shim.
type Spec struct {
	Command []string `json:"command"`
	// Path is the program to run when the driver resolved Command[0]
	// itself (a name looked up on PATH); Command[0] stays the process's
	// argv[0]. Empty: Command[0], relative to Dir unless absolute.
	Path    string            `json:"path,omitempty"`
	Dir     string            `json:"dir"` // working directory
	Env     map[string]string `json:"env"`
	Cgroups []string          `json:"cgroups,omitempty"` // cgroup.procs / tasks files to join before starting
	LogMax  int64             `json:"logMax"`
	// PIDFile, when set, makes Command a launcher: it starts the real
	// process in the background, writes its PID to this file and exits 0
	// (as `runc run --detach --pid-file` does). The shim, a child
	// subreaper, adopts that process and supervises it instead.
	PIDFile string `json:"pidFile,omitempty"`
	// Forward lists TCP ports the shim relays to the instance, for
	// runtimes that give an instance its own network namespace.
	Forward []Forward `json:"forward,omitempty"`
	// Netns, when set, is the network namespace (a path) Command starts
	// in; the shim itself stays in its own.
	Netns string `json:"netns,omitempty"`
	// ResolvConf, when set, is the file Command sees at /etc/resolv.conf
	// (WithResolvConf): its virtual network's DNS server.
	ResolvConf string `json:"resolvConf,omitempty"`
}

// Forward relays connections to Listen (host:port) to Target (host:port).
type Forward struct {
	Listen string `json:"listen"`
	Target string `json:"target"`
	// Netns, when set, is the network namespace (a path) Listen is in,
	// the instance's: the relay then takes the instance's connections to
	// a Target of the node's (its metadata service).
	Netns string `json:"netns,omitempty"`
}

type pidInfo struct {
	Shim       int    `json:"shim"`
	ShimStart  uint64 `json:"shimStart"`
	Child      int    `json:"child"`
	ChildStart uint64 `json:"childStart"` // /proc start times, to tell a reused PID apart
}

type exitInfo struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Reason string `json:"reason"`
}

// Main is `weft shim DIR`: the supervisor of one instance (and, with
// --with-resolv-conf, the helper of WithResolvConf).
func Main(args []string) int {
	if len(args) > 0 && args[0] == resolvConfArg {
		return withResolvConf(args[1:])
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: weft shim DIR")
		return 2
	}
	if err := runShim(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "weft shim:", err)
		atomicfile.WriteJSON(filepath.Join(args[0], exitFile), exitInfo{Code: -1, Reason: err.Error()})
		return 1
	}
	return 0
}

func runShim(dir string) error {
	var spec Spec
	if err := atomicfile.ReadJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return err
	}
	// Join the cgroups first: the child inherits them from its first instruction.
	for _, procs := range spec.Cgroups {
		if err := os.WriteFile(procs, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
	}
	logw, err := newCappedLog(filepath.Join(dir, LogFile), spec.LogMax)
	if err != nil {
		return err
	}
	defer logw.Close()
	// Listen before starting, so that a port in use fails the start.
	var listeners []net.Listener
	closeListeners := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	defer closeListeners()
	for _, f := range spec.Forward {
		ln, err := forward(f)
		if err != nil {
			return err
		}
		listeners = append(listeners, ln)
	}
	// Our own pipe rather than os/exec's: a launched process inherits the
	// write end, and we must not wait for it to close before adopting the
	// process.
	outr, outw, err := os.Pipe()
	if err != nil {
		return err
	}
	copied := make(chan struct{})
	go func() { io.Copy(logw, outr); close(copied) }()
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	switch {
	case spec.Path != "":
		cmd.Path = spec.Path
	case !filepath.IsAbs(spec.Command[0]):
		cmd.Path = filepath.Join(spec.Dir, spec.Command[0])
	}
	cmd.Err = nil // exec.Command's own lookup on the shim's PATH does not apply
	cmd.Dir = spec.Dir
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = outw, outw
	if spec.PIDFile != "" {
		// Orphans of our descendants (the launched process, once the
		// launcher exits) become our children, so we can wait for them.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("become a subreaper: %w", err)
		}
		os.Remove(spec.PIDFile)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// A stopped shim stops its instance: SIGTERM and SIGINT are passed on
	// (see terminate) rather than killing the shim alone, which would
	// leave the instance running unsupervised. Asked for before the start
	// so that no signal falls between the start and the handler.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if spec.ResolvConf != "" {
		WithResolvConf(cmd, spec.ResolvConf, selfCommand())
	}
	err = StartIn(spec.Netns, cmd)
	outw.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Command[0], err)
	}
	child := cmd.Process.Pid
	if spec.PIDFile != "" {
		if err := cmd.Wait(); err != nil {
			// The launcher's complaint is the last thing it wrote.
			select {
			case <-copied:
			case <-time.After(time.Second):
			}
			return fmt.Errorf("%s: %w: %s", filepath.Base(spec.Command[0]), err, logw.lastLine())
		}
		data, err := os.ReadFile(spec.PIDFile)
		if err != nil {
			return fmt.Errorf("%s wrote no PID: %w", spec.Command[0], err)
		}
		if child, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
			return fmt.Errorf("%s wrote a bad PID %q", spec.Command[0], data)
		}
	}
	_, start, _ := procstat.Stat(child)
	_, shimStart, _ := procstat.Stat(os.Getpid())
	info := pidInfo{Shim: os.Getpid(), ShimStart: shimStart, Child: child, ChildStart: start}
	if err := atomicfile.WriteJSON(filepath.Join(dir, pidFile), info); err != nil {
		syscall.Kill(child, syscall.SIGKILL)
		return err
	}
	// The process runtime's child leads its own process group, which its
	// descendants share; a launched process (a container's init) is
	// signalled alone, and takes its descendants with it.
	signalInstance := func(sig syscall.Signal) { syscall.Kill(-child, sig) }
	if spec.PIDFile != "" {
		signalInstance = func(sig syscall.Signal) { syscall.Kill(child, sig) }
	}
	var terminated atomic.Bool
	go func() {
		<-sigs
		terminated.Store(true)
		terminate(signalInstance)
	}()
	ws, err := waitFor(child)
	if terminated.Load() {
		signalInstance(syscall.SIGKILL) // descendants that outlived the child
	}
	// Let the last output reach the log, unless a descendant that outlived
	// the child still holds the pipe.
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	exit := exitInfo{Reason: "exited with code 0"}
	switch {
	case err != nil:
		exit.Code, exit.Reason = -1, err.Error()
	case ws.Signaled():
		exit.Code, exit.Signal = 128+int(ws.Signal()), int(ws.Signal())
		exit.Reason = "killed by " + unix.SignalName(ws.Signal())
	default:
		exit.Code = ws.ExitStatus()
		exit.Reason = fmt.Sprintf("exited with code %d", exit.Code)
	}
	if terminated.Load() {
		exit.Reason = "stopped with its shim: " + exit.Reason
	}
	// Free the ports before the exit is recorded: whoever reads the record
	// may start the instance again on the same ports.
	closeListeners()
	return atomicfile.WriteJSON(filepath.Join(dir, exitFile), exit)
}

// termGrace is how long a shim that was told to stop gives its instance
// to exit after SIGTERM before it sends SIGKILL.
const termGrace = 2 * time.Second

// terminate sends the instance SIGTERM and, unless it exits first (the
// shim's process ends with the record), SIGKILL after termGrace.
func terminate(signal func(syscall.Signal)) {
	signal(syscall.SIGTERM)
	time.Sleep(termGrace)
	signal(syscall.SIGKILL)
}

// forward listens on f.Listen and relays each connection to f.Target
// until the listener is closed.
func forward(f Forward) (net.Listener, error) {
	listen := func() (net.Listener, error) { return net.Listen("tcp", f.Listen) }
	if f.Netns != "" {
		listen = func() (net.Listener, error) { return listenIn(f.Netns, f.Listen) }
	}
	ln, err := listen()
	if err != nil {
		return nil, fmt.Errorf("forward port: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, f.Target)
		}
	}()
	return ln, nil
}

// listenIn listens on addr in the network namespace at path. A socket
// stays in the namespace it was made in, so only this thread enters it,
// and only while making the socket.
func listenIn(path, addr string) (ln net.Listener, err error) {
	err = inNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// StartIn starts cmd in the network namespace at netns ("": the caller's).
func StartIn(netns string, cmd *exec.Cmd) error {
	if netns == "" {
		return cmd.Start()
	}
	return inNetns(netns, cmd.Start)
}

// inNetns runs fn on an OS thread switched into the network namespace at
// path: sockets it opens and processes it starts are in that namespace.
func inNetns(path string, fn func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return err
	}
	defer own.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		err := fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and ends with this goroutine
		done <- err
	}()
	return <-done
}

func relay(c net.Conn, target string) {
	defer c.Close()
	t, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return // the client sees the connection close, as if refused
	}
	defer t.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(t, c)
		t.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, t)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// waitFor reaps children until pid has exited and returns its status; the
// others are orphans a subreaper inherits.
func waitFor(pid int) (syscall.WaitStatus, error) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if got == pid {
			return ws, nil
		}
	}
}

// cappedLog appends to a file and, past max/2 bytes, rotates it to .1 so
// the two together stay under max.
type cappedLog struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

func newCappedLog(path string, max int64) (*cappedLog, error) {
	// Instances' output may hold secrets: only the agent's user reads it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil { // a log from before logs were private
		f.Close()
		return nil, err
	}
	fi, _ := f.Stat()
	return &cappedLog{path: path, max: max, f: f, size: fi.Size()}, nil
}

func (l *cappedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.size+int64(len(p)) > l.max/2 {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return 0, err
		}
		l.f, l.size = f, 0
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// lastLine returns the last non-empty line written to the current file.
func (l *cappedLog) lastLine() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, _ := os.ReadFile(l.path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

func (l *cappedLog) Close() error { return l.f.Close() }

var _ io.Writer = (*cappedLog)(nil)
