package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure an Agent. The zero value is the real thing: it sets the
// clock, syncs and powers off the machine it runs on.
type Options struct {
	Logger *slog.Logger // default: discard
	// Console receives the workload's stdout and stderr (default os.Stderr;
	// Main passes /dev/console so they reach the VM's serial log).
	Console io.Writer

	// The following reach into the machine; tests replace them.
	SetClock func(time.Time) error   // default: clock_settime(CLOCK_REALTIME)
	Sync     func()                  // default: sync(2)
	PowerOff func(reboot bool) error // default: reboot(2) with POWER_OFF or RESTART
	// StopGrace is how long a stopping workload has between SIGTERM and
	// SIGKILL (default 5 s).
	StopGrace time.Duration
	// MetadataListen is where Run serves the instance metadata service
	// (HOST:PORT on the guest's loopback; default DefaultMetadataListen,
	// "none" for no service).
	MetadataListen string
	// NetNS is the path of the network namespace whose routes OpRoutes
	// sets (default "": the agent's own; tests give another).
	NetNS string
	// ClockEvents is the kernel's sysfs folder of clock event devices
	// (default /sys/devices/system/clockevents; see timerless).
	ClockEvents string
}

// Agent is the guest agent: it answers requests on the port and supervises
// the workload. The workload outlives connections: the agent keeps it while
// the port is reopened.
type Agent struct {
	opts     Options
	log      *slog.Logger
	procs    *children
	workload *supervisor
	calls    hostCalls // the guest's requests to the host
	cpu      cpuCounter
	noTimer  bool // read once: the kernel sets its clock event devices up at boot

	mdMu  sync.Mutex
	mdURL string // the metadata service, once it listens
}

// New returns an Agent.
func New(opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Console == nil {
		opts.Console = os.Stderr
	}
	if opts.SetClock == nil {
		opts.SetClock = setClock
	}
	if opts.Sync == nil {
		opts.Sync = syncDisks
	}
	if opts.PowerOff == nil {
		opts.PowerOff = powerOff
	}
	if opts.MetadataListen == "" {
		opts.MetadataListen = DefaultMetadataListen
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.ClockEvents == "" {
		opts.ClockEvents = "/sys/devices/system/clockevents"
	}
	procs := &children{pids: map[int]bool{}}
	return &Agent{
		noTimer:  timerless(opts.ClockEvents),
		opts:     opts,
		log:      opts.Logger,
		procs:    procs,
		workload: newSupervisor(procs, opts.Console, opts.Logger),
	}
}

// Run opens the port at path and serves it until ctx ends, reopening it
// every 100 ms after EOF or an error (the host side closing its socket shows
// as EOF in the guest). It returns ctx's error.
func (a *Agent) Run(ctx context.Context, path string) error {
	a.listenMetadata(ctx)
	logged := false
	for {
		f, err := os.OpenFile(resolvePort(path), os.O_RDWR|syscall.O_NOCTTY, 0)
		if err == nil {
			logged = false
			// Closing f when ctx ends unblocks Serve's read.
			stop := context.AfterFunc(ctx, func() { f.Close() })
			err = a.Serve(ctx, f)
			stop()
			f.Close()
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				a.log.Debug("port closed", "err", err)
			}
		} else if !logged {
			a.log.Info("waiting for port", "path", path, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Serve says hello on rw, then answers requests read from it until reading
// fails; it returns that error (io.EOF when the other side closed). Requests
// are handled concurrently. A line that is not a request is answered with
// ok:false and id 0 (or the id, when it could be read), and serving goes on.
// Work started by a request (an exec) is bound to ctx, not to the connection.
func (a *Agent) Serve(ctx context.Context, rw io.ReadWriter) error {
	w := &lineWriter{w: rw}
	a.calls.setConn(w)
	defer a.calls.clearConn(w)
	hello := a.hello()
	hello.Op = OpReady
	hello.OK = true
	if err := w.write(hello); err != nil {
		return fmt.Errorf("guest: say hello: %w", err)
	}
	r := bufio.NewReaderSize(rw, 64<<10)
	for {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			var idOnly struct {
				ID int64 `json:"id"`
			}
			_ = json.Unmarshal(line, &idOnly)
			w.write(response{ID: idOnly.ID, Error: "bad request: " + err.Error()})
			continue
		}
		go func() {
			resp, after := a.handle(ctx, req)
			resp.ID = req.ID
			if err := w.write(resp); err != nil {
				a.log.Debug("answer lost", "op", req.Op, "id", req.ID, "err", err)
			}
			if after != nil {
				after()
			}
		}()
	}
}

// readLine reads one line of at most maxLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine {
			return nil, fmt.Errorf("guest: line longer than %d bytes", maxLine)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return buf, nil
			}
			return nil, err
		}
	}
}

// lineWriter writes one JSON message per line; writes are whole lines, so
// concurrent answers never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(b)
	return err
}

// handle answers one request. after, when not nil, runs once the answer is
// written (shutdown powers off only then, or the answer would be lost).
func (a *Agent) handle(ctx context.Context, req request) (resp response, after func()) {
	fail := func(err error) response { return response{Error: err.Error()} }
	switch req.Op {
	case OpPing:
		resp = a.hello()
		resp.Uptime = uptime().Seconds()
		resp.Load = loadavg()
		resp.OK = true
		return resp, nil
	case OpExec:
		return a.exec(ctx, req), nil
	case OpStart:
		if err := a.workload.start(Workload{Cmd: req.Cmd, Env: a.withMetadata(req.Env), Dir: req.Dir}, a.opts.StopGrace); err != nil {
			return fail(err), nil
		}
		return response{OK: true}, nil
	case OpStatus:
		st := a.workload.status()
		return response{OK: true, WorkloadRunning: st.Running, WorkloadPid: st.PID,
			WorkloadRestarts: st.Restarts, LastExit: st.LastExit}, nil
	case OpSetTime:
		if req.UnixNanos <= 0 {
			return fail(errors.New("settime: unixNanos must be positive")), nil
		}
		if err := a.opts.SetClock(time.Unix(0, req.UnixNanos)); err != nil {
			return fail(fmt.Errorf("settime: %w", err)), nil
		}
		return response{OK: true}, nil
	case OpSync:
		a.opts.Sync()
		return response{OK: true}, nil
	case OpWriteFile:
		if err := writeFile(req); err != nil {
			return fail(err), nil
		}
		return response{OK: true}, nil
	case OpRemove:
		if err := remove(req); err != nil {
			return fail(err), nil
		}
		return response{OK: true}, nil
	case OpStats:
		return response{OK: true, Stats: a.stats()}, nil
	case OpMount:
		if err := mountDisk(req.Serial, req.Path); err != nil {
			return fail(err), nil
		}
		return response{OK: true}, nil
	case OpRoutes:
		if err := checkRoutes(req); err != nil {
			return fail(err), nil
		}
		mac, _ := net.ParseMAC(req.MAC) // checked
		if err := setRoutes(a.opts.NetNS, mac.String(), req.Routes, req.Via); err != nil {
			return fail(err), nil
		}
		a.log.Info("routes set", "mac", req.MAC, "routes", req.Routes, "via", req.Via)
		return response{OK: true}, nil
	case OpHTTPReply:
		a.calls.reply(req)
		return response{OK: true}, nil
	case OpShutdown:
		a.workload.stop(a.opts.StopGrace)
		a.opts.Sync()
		reboot := req.Reboot
		return response{OK: true}, func() {
			// Give the answer time to leave the virtqueue before the machine goes.
			time.Sleep(50 * time.Millisecond)
			if err := a.opts.PowerOff(reboot); err != nil {
				a.log.Error("power off", "err", err)
			}
		}
	default:
		return fail(fmt.Errorf("unknown op %q", req.Op)), nil
	}
}

// hello fills in who the guest is.
func (a *Agent) hello() response {
	host, _ := os.Hostname()
	return response{Hostname: host, Addresses: addresses(), BootMillis: uptime().Milliseconds(), NoTimer: a.noTimer}
}

// exec runs a command to completion and returns its exit code and output.
func (a *Agent) exec(ctx context.Context, req request) response {
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return response{Error: "exec: empty command"}
	}
	var cancel context.CancelFunc
	if req.TimeoutMillis > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Cmd[0], req.Cmd[1:]...)
	cmd.Env = mergeEnv(os.Environ(), a.withMetadata(req.Env))
	cmd.Dir = req.Dir
	setProcessGroup(cmd)
	// Kill the whole group: a shell's children would otherwise keep the pipes open.
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	stdout := &capBuffer{max: MaxOutput}
	stderr := &capBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := a.procs.start(cmd); err != nil {
		return response{Error: "exec: " + err.Error(), ExitCode: -1}
	}
	err := cmd.Wait()
	a.procs.done(cmd.Process.Pid)
	resp := response{
		OK: true, ExitCode: exitCode(cmd.ProcessState),
		Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(),
		StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated,
	}
	if ctx.Err() != nil {
		resp.OK = false
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			resp.Error = fmt.Sprintf("exec: timed out after %v", time.Duration(req.TimeoutMillis)*time.Millisecond)
		} else {
			resp.Error = "exec: " + ctx.Err().Error()
		}
	} else if err != nil && !errors.As(err, new(*exec.ExitError)) && !errors.Is(err, exec.ErrWaitDelay) {
		resp.OK = false
		resp.Error = "exec: " + err.Error()
	}
	return resp
}

// exitCode is the process's exit code, or 128+signal when a signal killed it
// (as a shell reports it).
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// describeExit says how a process ended, for WorkloadStatus.LastExit.
func describeExit(ps *os.ProcessState, err error) string {
	if ps == nil {
		if err != nil {
			return err.Error()
		}
		return "unknown"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d", int(ws.Signal()))
	}
	return fmt.Sprintf("exited with code %d", ps.ExitCode())
}

// mergeEnv returns base with env's variables set (replacing any of the same name).
func mergeEnv(base []string, env map[string]string) []string {
	if len(env) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := env[name]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// capBuffer keeps the first max bytes written and discards the rest, so a
// chatty command never blocks on a full pipe.
type capBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// children tracks the processes the agent started and waits for itself, so
// that the zombie reaper (when the agent is PID 1) leaves them alone.
type children struct {
	mu   sync.Mutex
	pids map[int]bool
}

// start starts cmd and records its pid, both under the lock the reaper
// holds, so the reaper cannot reap the process before it is recorded.
func (c *children) start(cmd *exec.Cmd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	c.pids[cmd.Process.Pid] = true
	return nil
}

// done forgets pid once its Wait returned.
func (c *children) done(pid int) {
	c.mu.Lock()
	delete(c.pids, pid)
	c.mu.Unlock()
}
