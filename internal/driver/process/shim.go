package process

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/atomicfile"
)

// Files the shim keeps in an instance's directory.
const (
	specFile = "spec.json"  // what to run, written by the driver
	pidFile  = "pid.json"   // the running child, written by the shim
	exitFile = "exit.json"  // how the child ended, written by the shim
	logFile  = "output.log" // stdout and stderr, rotated to output.log.1
)

// shimSpec is what the driver hands the shim.
type shimSpec struct {
	Command []string          `json:"command"`
	Dir     string            `json:"dir"` // working directory
	Env     map[string]string `json:"env"`
	Cgroups []string          `json:"cgroups,omitempty"` // cgroup.procs / tasks files to join before starting
	LogMax  int64             `json:"logMax"`
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

// ShimMain is `weft shim DIR`: the supervisor of one instance. It outlives
// the agent that started it, so an agent restart does not touch the
// instance: it owns the child's output (a size-capped log) and records the
// child's exit for whichever agent asks next.
func ShimMain(args []string) int {
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
	var spec shimSpec
	if err := atomicfile.ReadJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return err
	}
	// Join the cgroups first: the child inherits them from its first instruction.
	for _, procs := range spec.Cgroups {
		if err := os.WriteFile(procs, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
	}
	logw, err := newCappedLog(filepath.Join(dir, logFile), spec.LogMax)
	if err != nil {
		return err
	}
	defer logw.Close()
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	if !filepath.IsAbs(spec.Command[0]) {
		cmd.Path = filepath.Join(spec.Dir, spec.Command[0])
	}
	cmd.Dir = spec.Dir
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", spec.Command[0], err)
	}
	_, start, _ := procStat(cmd.Process.Pid)
	_, shimStart, _ := procStat(os.Getpid())
	info := pidInfo{Shim: os.Getpid(), ShimStart: shimStart, Child: cmd.Process.Pid, ChildStart: start}
	if err := atomicfile.WriteJSON(filepath.Join(dir, pidFile), info); err != nil {
		cmd.Process.Kill()
		return err
	}
	err = cmd.Wait()
	exit := exitInfo{Reason: "exited with code 0"}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			exit.Code, exit.Signal = 128+int(ws.Signal()), int(ws.Signal())
			exit.Reason = "killed by " + unix.SignalName(ws.Signal())
		default:
			exit.Code = ws.ExitStatus()
			exit.Reason = fmt.Sprintf("exited with code %d", exit.Code)
		}
	} else if err != nil {
		exit.Code, exit.Reason = -1, err.Error()
	}
	return atomicfile.WriteJSON(filepath.Join(dir, exitFile), exit)
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
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
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return 0, err
		}
		l.f, l.size = f, 0
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *cappedLog) Close() error { return l.f.Close() }

// procStat reads a process's state (R, S, Z, ...) and its start time (field
// 22 of /proc/PID/stat, clock ticks since boot): with the PID, the start
// time names one process even after the PID is reused.
func procStat(pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces; fields resume after the last ')'.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 <= len(s) {
		s = s[i+2:]
	}
	fields := strings.Fields(s)
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	_, err = fmt.Sscan(fields[19], &start) // field 22 overall: fields here start at field 3
	return fields[0][0], start, err
}

// alive reports whether the process pid, started at start, still runs.
func alive(pid int, start uint64) bool {
	state, s, err := procStat(pid)
	return err == nil && s == start && state != 'Z'
}

var _ io.Writer = (*cappedLog)(nil)
