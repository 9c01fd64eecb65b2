package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeMachine records what the agent asked of the machine.
type fakeMachine struct {
	mu       sync.Mutex
	clock    time.Time
	syncs    int
	powerOff []bool
	poweredC chan bool
}

func newFakeMachine() *fakeMachine { return &fakeMachine{poweredC: make(chan bool, 4)} }

func (m *fakeMachine) options(console io.Writer) Options {
	return Options{
		Console:   console,
		StopGrace: 2 * time.Second,
		SetClock: func(t time.Time) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.clock = t
			return nil
		},
		Sync: func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.syncs++
		},
		PowerOff: func(reboot bool) error {
			m.mu.Lock()
			m.powerOff = append(m.powerOff, reboot)
			m.mu.Unlock()
			m.poweredC <- reboot
			return nil
		},
	}
}

// syncBuffer is a bytes.Buffer safe for the workload's output copier.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// socketPair returns two connected unix sockets, like QEMU's chardev and
// the guest's port end to end.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// serve runs agent a on one end of a fresh connection and returns a Client
// on the other; both end with the test.
func serve(t *testing.T, a *Agent, pipe bool) *Client {
	t.Helper()
	var host, guest net.Conn
	if pipe {
		host, guest = net.Pipe()
	} else {
		host, guest = socketPair(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Serve(ctx, guest)
	}()
	c := NewClient(host)
	t.Cleanup(func() {
		cancel()
		c.Close()
		guest.Close()
		<-done
	})
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestReadyAndPing(t *testing.T) {
	for _, pipe := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipe=%v", pipe), func(t *testing.T) {
			before := time.Now()
			c := serve(t, New(newFakeMachine().options(io.Discard)), pipe)
			ctx := ctxTimeout(t, 5*time.Second)
			hello, err := c.Ready(ctx)
			if err != nil {
				t.Fatal(err)
			}
			host, _ := os.Hostname()
			if hello.Hostname != host || hello.SinceBoot <= 0 {
				t.Errorf("hello = %+v, want hostname %q and a time since boot", hello, host)
			}
			p, err := c.Ping(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.Uptime <= 0 || p.Hostname != host {
				t.Errorf("ping = %+v", p)
			}
			if h := c.Heard(); h.Before(before) || h.After(time.Now()) {
				t.Errorf("Heard() = %v, want the time of the ping's answer (after %v)", h, before)
			}
		})
	}
}

// lossyConn drops everything the guest writes until open is closed, and
// everything it would read until then too: a guest with its port closed.
type lossyConn struct {
	net.Conn
	open chan struct{}
}

func (l *lossyConn) isOpen() bool {
	select {
	case <-l.open:
		return true
	default:
		return false
	}
}

func (l *lossyConn) Write(p []byte) (int, error) {
	if !l.isOpen() {
		return len(p), nil
	}
	return l.Conn.Write(p)
}

func (l *lossyConn) Read(p []byte) (int, error) {
	for {
		n, err := l.Conn.Read(p)
		if err != nil || l.isOpen() {
			return n, err
		}
	}
}

func TestReadyPingsUntilAnswered(t *testing.T) {
	host, guest := socketPair(t)
	lossy := &lossyConn{Conn: guest, open: make(chan struct{})}
	a := New(newFakeMachine().options(io.Discard))
	go a.Serve(context.Background(), lossy) // its hello is lost
	c := NewClient(host)
	defer c.Close()
	defer guest.Close()
	time.AfterFunc(500*time.Millisecond, func() { close(lossy.open) })

	ctx := ctxTimeout(t, 5*time.Second)
	start := time.Now()
	hello, err := c.Ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 400*time.Millisecond || waited > 2*time.Second {
		t.Errorf("Ready took %v, want about 0.5-0.7 s", waited)
	}
	if hello.Hostname == "" {
		t.Errorf("hello from ping = %+v", hello)
	}
}

func TestExec(t *testing.T) {
	c := serve(t, New(newFakeMachine().options(io.Discard)), false)
	tests := []struct {
		name           string
		cmd            []string
		env            map[string]string
		wantCode       int
		wantOut        string
		wantErrOut     string
		wantErr        bool
		wantOutLen     int
		timeout        time.Duration
		wantFastFinish bool
	}{
		{name: "ok", cmd: []string{"echo", "hello"}, wantOut: "hello\n"},
		{name: "exit code", cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, wantCode: 3, wantOut: "out\n", wantErrOut: "err\n"},
		{name: "env", cmd: []string{"sh", "-c", `printf %s "$WEFT_X"`}, env: map[string]string{"WEFT_X": "y z"}, wantOut: "y z"},
		{name: "killed", cmd: []string{"sh", "-c", "kill -9 $$"}, wantCode: 137},
		{name: "not found", cmd: []string{"/no/such/command"}, wantCode: -1, wantErr: true},
		{name: "empty", cmd: nil, wantCode: -1, wantErr: true},
		{name: "output cap", cmd: []string{"head", "-c", "3000000", "/dev/zero"}, wantOutLen: MaxOutput},
		{name: "timeout", cmd: []string{"sh", "-c", "sleep 30"}, timeout: 300 * time.Millisecond, wantErr: true, wantCode: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code, err := c.Exec(ctx, tt.cmd, tt.env, &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.timeout > 0 && code == -1 {
				// The host gave up before the guest's answer came: fine too.
			} else if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if tt.wantOutLen > 0 {
				if stdout.Len() != tt.wantOutLen {
					t.Errorf("stdout has %d bytes, want %d", stdout.Len(), tt.wantOutLen)
				}
			} else if stdout.String() != tt.wantOut || stderr.String() != tt.wantErrOut {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.wantOut, tt.wantErrOut)
			}
			if tt.timeout > 0 && time.Since(start) > 3*time.Second {
				t.Errorf("timed-out exec took %v", time.Since(start))
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	c := serve(t, New(newFakeMachine().options(io.Discard)), false)
	ctx := ctxTimeout(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				if _, err := c.Ping(ctx); err != nil {
					errs <- err
				}
				return
			}
			// Later requests finish first: answers come back out of order.
			var out bytes.Buffer
			code, err := c.Exec(ctx, []string{"sh", "-c", fmt.Sprintf("sleep 0.%02d; echo %d; exit %d", 32-i, i, i)}, nil, &out, nil)
			if err != nil {
				errs <- err
				return
			}
			if code != i || out.String() != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("request %d: got code %d output %q", i, code, out.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawExchange writes lines to a served agent and returns the answers read
// back, skipping the ready message.
func rawExchange(t *testing.T, lines ...string) []map[string]any {
	t.Helper()
	host, guest := socketPair(t)
	defer host.Close()
	defer guest.Close()
	go New(newFakeMachine().options(io.Discard)).Serve(context.Background(), guest)
	host.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(host)
	var out []map[string]any
	read := func() map[string]any {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("agent sent %q: %v", line, err)
		}
		return m
	}
	if m := read(); m["op"] != OpReady {
		t.Fatalf("first message = %v, want ready", m)
	}
	for _, l := range lines {
		if _, err := io.WriteString(host, l+"\n"); err != nil {
			t.Fatal(err)
		}
		out = append(out, read())
	}
	return out
}

func TestBadLinesAreAnsweredAndServingGoesOn(t *testing.T) {
	got := rawExchange(t,
		`this is not json`,
		`{"id":5,"op":"ping","cmd":"not a list"}`,
		`{"id":6,"op":"frobnicate"}`,
		`{"id":7,"op":"ping"}`,
	)
	want := []struct {
		id      float64
		ok      bool
		errPart string
	}{
		{0, false, "bad request"},
		{5, false, "bad request"},
		{6, false, "unknown op"},
		{7, true, ""},
	}
	for i, w := range want {
		m := got[i]
		id, _ := m["id"].(float64)
		ok, _ := m["ok"].(bool)
		errMsg, _ := m["error"].(string)
		if id != w.id || ok != w.ok || !strings.Contains(errMsg, w.errPart) {
			t.Errorf("answer %d = %v, want id %v ok %v error containing %q", i, m, w.id, w.ok, w.errPart)
		}
	}
}

func TestUnknownOpIsAnError(t *testing.T) {
	c := serve(t, New(newFakeMachine().options(io.Discard)), false)
	_, err := c.call(ctxTimeout(t, 5*time.Second), request{Op: "frobnicate"})
	var gerr *Error
	if !errors.As(err, &gerr) || !strings.Contains(gerr.Message, "unknown op") {
		t.Fatalf("err = %v, want *Error unknown op", err)
	}
}

// fakeQEMU listens on a unix socket, as QEMU's chardev does, and serves
// each accepted connection with the same agent until the test ends.
func fakeQEMU(t *testing.T, a *Agent) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "guest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	// Start listening only a moment later: Dial must retry.
	l := make(chan net.Listener, 1)
	time.AfterFunc(300*time.Millisecond, func() {
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
			close(l)
			return
		}
		l <- ln
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				a.Serve(context.Background(), conn)
				conn.Close()
			}
		}()
	})
	t.Cleanup(func() {
		if ln, ok := <-l; ok {
			ln.Close()
		}
	})
	return sock
}

func TestReconnectKeepsWorkload(t *testing.T) {
	m := newFakeMachine()
	a := New(m.options(io.Discard))
	t.Cleanup(func() { a.workload.stop(time.Second) })
	sock := fakeQEMU(t, a)
	ctx := ctxTimeout(t, 10*time.Second)

	c1, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c1.Start(ctx, Workload{Cmd: []string{"sleep", "60"}}); err != nil {
		t.Fatal(err)
	}
	st1, err := c1.Status(ctx)
	if err != nil || !st1.Running || st1.PID == 0 {
		t.Fatalf("status = %+v, %v; want running", st1, err)
	}
	c1.Close()
	if _, err := c1.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ping on closed client: %v, want ErrClosed", err)
	}

	c2, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	st2, err := c2.Status(ctx)
	if err != nil || st2 != st1 {
		t.Fatalf("status after reconnect = %+v, %v; want %+v", st2, err, st1)
	}
}

func TestDialGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestWorkloadSupervision(t *testing.T) {
	var console syncBuffer
	m := newFakeMachine()
	a := New(m.options(&console))
	c := serve(t, a, false)
	ctx := ctxTimeout(t, 20*time.Second)

	// A workload that keeps failing is restarted, its output reaches the console.
	if err := c.Start(ctx, Workload{Cmd: []string{"sh", "-c", `echo "run $X in $(pwd)"; exit 2`}, Env: map[string]string{"X": "x1"}, Dir: "/"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var st WorkloadStatus
	for time.Now().Before(deadline) {
		var err error
		if st, err = c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		// The restart is counted before the second run prints.
		if st.Restarts >= 1 && strings.Count(console.String(), "run x1 in /\n") >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Restarts < 1 || st.LastExit != "exited with code 2" {
		t.Errorf("status = %+v, want a restart after exit code 2", st)
	}
	if n := strings.Count(console.String(), "run x1 in /\n"); n < 2 {
		t.Errorf("console has %q, want the workload's line twice", console.String())
	}

	// Start replaces the workload.
	if err := c.Start(ctx, Workload{Cmd: []string{"sleep", "60"}}); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Status(ctx)
	if err := c.Start(ctx, Workload{Cmd: []string{"sleep", "61"}}); err != nil {
		t.Fatal(err)
	}
	second, _ := c.Status(ctx)
	if !first.Running || !second.Running || first.PID == second.PID || second.Restarts != 0 {
		t.Errorf("status before %+v and after %+v replacing, want two running processes", first, second)
	}
	if err := syscall.Kill(first.PID, 0); err == nil {
		t.Errorf("replaced workload %d still runs", first.PID)
	}

	// A command that cannot start is an error, and nothing is supervised.
	var gerr *Error
	if err := c.Start(ctx, Workload{Cmd: []string{"/no/such/thing"}}); !errors.As(err, &gerr) {
		t.Errorf("start of a missing command: %v, want *Error", err)
	}
	if st, _ := c.Status(ctx); st.Running {
		t.Errorf("status after failed start = %+v", st)
	}
}

func TestSetTimeSyncShutdown(t *testing.T) {
	m := newFakeMachine()
	a := New(m.options(io.Discard))
	c := serve(t, a, false)
	ctx := ctxTimeout(t, 10*time.Second)

	when := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := c.SetTime(ctx, when); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The workload ignores SIGTERM; shutdown kills it after the grace period.
	if err := c.Start(ctx, Workload{Cmd: []string{"sh", "-c", "trap '' TERM; sleep 60 & wait"}}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Status(ctx)
	if err := c.Shutdown(ctx, true); err != nil {
		t.Fatal(err)
	}
	select {
	case reboot := <-m.poweredC:
		if !reboot {
			t.Error("powered off, want reboot")
		}
	case <-ctx.Done():
		t.Fatal("no power off")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.clock.Equal(when) || m.syncs != 2 {
		t.Errorf("clock %v syncs %d, want %v and 2", m.clock, m.syncs, when)
	}
	if err := syscall.Kill(st.PID, 0); err == nil {
		t.Errorf("workload %d survived shutdown", st.PID)
	}
}
