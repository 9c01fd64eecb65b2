package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by requests on a Client whose connection is closed
// (Close was called, or QEMU went away). Dial again to reconnect.
var ErrClosed = errors.New("guest: connection closed")

// Error is a request the guest answered with ok:false.
type Error struct {
	Op      string
	Message string
}

func (e *Error) Error() string { return "guest: " + e.Op + ": " + e.Message }

// Client is the host side of the protocol: it talks to one guest agent over
// the unix socket QEMU listens on. Its methods are safe for concurrent use;
// answers are matched to requests by id.
//
// A request the guest never sees (sent while the guest had the port closed,
// around a reboot or an agent restart) is never answered: every method waits
// until its ctx ends, so give it a deadline.
type Client struct {
	conn io.ReadWriteCloser
	log  *slog.Logger

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan response
	hello   *Hello
	helloCh chan struct{} // closed and replaced on every ready
	// guestHandler answers the guest's requests (ServeGuest).
	guestHandler http.Handler

	heard atomic.Int64 // when the last line came from the guest, in Unix nanoseconds

	closed  chan struct{} // closed when the read loop ends
	err     error         // why, set before closed is closed
	readEnd chan struct{}
}

// Dial connects to the agent socket at socketPath (QEMU's chardev socket,
// server=on), retrying every 50 ms until it accepts or ctx ends. QEMU
// creates the socket shortly after it starts, and accepts one connection at
// a time: after a Client is closed, Dial again.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", socketPath)
		if err == nil {
			return NewClient(conn), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("guest: dial %s: %w (last error: %v)", socketPath, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewClient returns a Client speaking the protocol over conn (a connection
// from Dial, or one end of a pipe in tests). The Client owns conn.
func NewClient(conn io.ReadWriteCloser) *Client {
	c := &Client{
		conn:    conn,
		log:     slog.New(slog.DiscardHandler),
		pending: map[int64]chan response{},
		helloCh: make(chan struct{}),
		closed:  make(chan struct{}),
		readEnd: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Close closes the connection; requests in flight fail with ErrClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.readEnd
	return err
}

// Done is closed when the connection is gone (the guest side or QEMU closed
// it, or Close was called).
func (c *Client) Done() <-chan struct{} { return c.closed }

// Heard returns when the guest last sent anything (an answer, a ready, a
// request of its own), or the zero time if it never did.
func (c *Client) Heard() time.Time {
	if n := c.heard.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Hello returns the guest's latest ready message, if one arrived.
func (c *Client) Hello() (Hello, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hello == nil {
		return Hello{}, false
	}
	return *c.hello, true
}

func (c *Client) readLoop() {
	defer close(c.readEnd)
	r := bufio.NewReaderSize(c.conn, 64<<10)
	var err error
	for {
		var line []byte
		line, err = readLine(r)
		if err != nil {
			break
		}
		c.heard.Store(time.Now().UnixNano())
		var m response
		if json.Unmarshal(line, &m) != nil {
			c.log.Debug("guest sent a bad line", "line", string(line))
			continue
		}
		c.mu.Lock()
		switch {
		case m.Op == OpReady:
			h := helloOf(m)
			c.hello = &h
			close(c.helloCh)
			c.helloCh = make(chan struct{})
		case m.Op == OpHTTP:
			go c.serveGuestHTTP(c.guestHandler, m)
		case m.ID != 0:
			if ch, ok := c.pending[m.ID]; ok {
				delete(c.pending, m.ID)
				select {
				case ch <- m:
				default: // Ready's pings share a channel: the first answer is enough
				}
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		c.err = ErrClosed
	} else {
		c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.mu.Unlock()
	close(c.closed)
}

func helloOf(m response) Hello {
	return Hello{Hostname: m.Hostname, Addresses: m.Addresses, SinceBoot: time.Duration(m.BootMillis) * time.Millisecond, NoTimer: m.NoTimer}
}

// send registers an answer channel for req and writes it; the caller must
// forget the id when done waiting.
func (c *Client) send(ctx context.Context, req *request, ch chan response) error {
	c.mu.Lock()
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if dc, ok := c.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		dl, _ := ctx.Deadline()
		dc.SetWriteDeadline(dl)
	}
	if _, err := c.conn.Write(b); err != nil {
		select {
		case <-c.closed:
			return c.err
		default:
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("guest: %s: %w", req.Op, err)
		}
		// Any other failed write means the connection is gone, though the
		// read loop may not have seen it yet: callers (Shutdown among them)
		// tell a lost connection by ErrClosed.
		return fmt.Errorf("%w: %s: %v", ErrClosed, req.Op, err)
	}
	return nil
}

func (c *Client) forget(ids ...int64) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// call sends req and waits for its answer. An answer with ok:false is an *Error.
func (c *Client) call(ctx context.Context, req request) (response, error) {
	ch := make(chan response, 1)
	err := c.send(ctx, &req, ch)
	defer c.forget(req.ID)
	if err != nil {
		return response{}, err
	}
	select {
	case m := <-ch:
		if !m.OK {
			return m, &Error{Op: req.Op, Message: m.Error}
		}
		return m, nil
	case <-ctx.Done():
		return response{}, fmt.Errorf("guest: %s: %w", req.Op, ctx.Err())
	case <-c.closed:
		return response{}, c.err
	}
}

// Ready waits until the guest agent is up: until its ready message arrives,
// or it answers one of the pings Ready sends (the ready may have been sent
// before this Client connected), 200 ms apart at first and then twice as
// far apart each time, up to 3 s: a booting guest reads nothing, and what
// waits for it must neither fill the socket (about 280 small writes fill a
// Unix socket's buffer: 200 ms pings blocked after about a minute of a
// slow software-emulated boot) nor take the guest long to answer once up.
// It returns at once when a ready message already arrived.
func (c *Client) Ready(ctx context.Context) (Hello, error) {
	answers := make(chan response, 1)
	var ids []int64
	defer func() { c.forget(ids...) }()
	every := 200 * time.Millisecond
	for {
		c.mu.Lock()
		hello, helloCh := c.hello, c.helloCh
		c.mu.Unlock()
		if hello != nil {
			return *hello, nil
		}
		req := request{Op: OpPing}
		if err := c.send(ctx, &req, answers); err != nil {
			return Hello{}, err
		}
		ids = append(ids, req.ID)
		select {
		case <-helloCh:
		case m := <-answers:
			if m.OK {
				h := helloOf(m)
				h.SinceBoot = time.Duration(m.Uptime * float64(time.Second))
				return h, nil
			}
		case <-time.After(every):
			every = min(2*every, 3*time.Second)
		case <-ctx.Done():
			return Hello{}, fmt.Errorf("guest: ready: %w", ctx.Err())
		case <-c.closed:
			return Hello{}, c.err
		}
	}
}

// Ping asks the guest how it is.
func (c *Client) Ping(ctx context.Context) (PingResult, error) {
	m, err := c.call(ctx, request{Op: OpPing})
	if err != nil {
		return PingResult{}, err
	}
	return PingResult{
		Uptime:   time.Duration(m.Uptime * float64(time.Second)),
		Hostname: m.Hostname, Addresses: m.Addresses, Load: m.Load,
	}, nil
}

// Exec runs cmd in the guest, with env added to the agent's environment,
// and returns its exit code (128+n when signal n killed it) once it exited.
// stdout and stderr (either may be nil) receive at most MaxOutput bytes
// each, after the command ended. ctx's deadline is also the command's: the
// guest kills it shortly before. A command the host stops waiting for
// without a deadline (ctx cancelled) goes on running in the guest. err is nil when the command ran, whatever its exit
// code; an *Error when it could not start or timed out.
func (c *Client) Exec(ctx context.Context, cmd []string, env map[string]string, stdout, stderr io.Writer) (exitCode int, err error) {
	req := request{Op: OpExec, Cmd: cmd, Env: env}
	if dl, ok := ctx.Deadline(); ok {
		// The guest gives up a little earlier, so its answer (with the
		// output so far) arrives before ctx ends.
		left := time.Until(dl)
		req.TimeoutMillis = max((left - min(left/10, 500*time.Millisecond)).Milliseconds(), 1)
	}
	m, err := c.call(ctx, req)
	if stdout != nil && len(m.Stdout) > 0 {
		stdout.Write(m.Stdout)
	}
	if stderr != nil && len(m.Stderr) > 0 {
		stderr.Write(m.Stderr)
	}
	if err != nil {
		if m.ExitCode == 0 {
			m.ExitCode = -1
		}
		return m.ExitCode, err
	}
	return m.ExitCode, nil
}

// Start starts w as the guest's workload, replacing (stopping) the one
// before. The guest restarts it with back-off whenever it exits. It returns
// an *Error when the command cannot be started.
func (c *Client) Start(ctx context.Context, w Workload) error {
	_, err := c.call(ctx, request{Op: OpStart, Cmd: w.Cmd, Env: w.Env, Dir: w.Dir})
	return err
}

// Status reports the workload's state.
func (c *Client) Status(ctx context.Context) (WorkloadStatus, error) {
	m, err := c.call(ctx, request{Op: OpStatus})
	if err != nil {
		return WorkloadStatus{}, err
	}
	return WorkloadStatus{Running: m.WorkloadRunning, PID: m.WorkloadPid, Restarts: m.WorkloadRestarts, LastExit: m.LastExit}, nil
}

// SetTime sets the guest's clock to t (after a restore or a migration the
// guest's clock is where it was when the VM was saved).
func (c *Client) SetTime(ctx context.Context, t time.Time) error {
	_, err := c.call(ctx, request{Op: OpSetTime, UnixNanos: t.UnixNano()})
	return err
}

// Mount mounts the ext4 file system of the guest's disk whose serial is
// serial at path, an absolute path other than /, making the folder if
// missing; a file system already mounted there is left as it is. It
// returns an *Error when the guest has no such disk or cannot mount it.
func (c *Client) Mount(ctx context.Context, serial, path string) error {
	_, err := c.call(ctx, request{Op: OpMount, Serial: serial, Path: path})
	return err
}

// Sync flushes the guest's file systems to its disks.
func (c *Client) Sync(ctx context.Context) error {
	_, err := c.call(ctx, request{Op: OpSync})
	return err
}

// Shutdown stops the workload (SIGTERM, SIGKILL after 5 s), syncs, and
// powers the guest off (or reboots it). It returns once the guest agreed;
// the connection closing first counts as agreement, since the guest answers
// just before it goes. Wait for QEMU to exit to know the guest is down.
func (c *Client) Shutdown(ctx context.Context, reboot bool) error {
	select {
	case <-c.closed:
		return c.err
	default:
	}
	_, err := c.call(ctx, request{Op: OpShutdown, Reboot: reboot})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// SetRoutes makes the routes of the guest's interface whose MAC is mac
// (its virtual network's) exactly routes, through via (the network's VPN
// gateway); none removes those it had. It returns an *Error when the
// guest has no such interface or cannot add a route (via is not on the
// interface's network).
func (c *Client) SetRoutes(ctx context.Context, mac string, routes []netip.Prefix, via netip.Addr) error {
	_, err := c.call(ctx, request{Op: OpRoutes, MAC: mac, Routes: routes, Via: via})
	return err
}
