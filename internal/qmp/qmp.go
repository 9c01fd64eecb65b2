// Package qmp is a client for the QEMU Machine Protocol: JSON commands and
// asynchronous events over QEMU's monitor socket (`-qmp unix:PATH,server=on,wait=off`).
//
// A Client negotiates capabilities on Dial, then runs any number of
// concurrent Execute calls, matching each reply to its command by the "id"
// it sends, and hands events to subscribers. It knows only the protocol and
// the few commands the vm runtime needs (commands.go); anything else goes
// through Execute.
//
// https://www.qemu.org/docs/master/interop/qmp-spec.html
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// ErrClosed is returned by Execute once the connection has ended, whether
// Close was called or QEMU went away (as it does after quit).
var ErrClosed = errors.New("qmp: connection closed")

// Error is an error QEMU returned for a command.
type Error struct {
	Class string // e.g. "GenericError", "CommandNotFound", "DeviceNotActive"
	Desc  string
}

func (e *Error) Error() string { return e.Class + ": " + e.Desc }

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Event is an asynchronous notice from QEMU, such as SHUTDOWN, STOP,
// RESUME, MIGRATION or MIGRATION_PASS.
type Event struct {
	Name string
	Data json.RawMessage // the event's "data" object; nil when it has none
	Time time.Time       // when QEMU emitted it
}

// eventBuffer is how many events a subscriber may fall behind before newer
// ones are dropped for it. QEMU emits few events; a subscriber that lags
// this far is not reading.
const eventBuffer = 256

// Client is a QMP connection. Its methods are safe for concurrent use.
type Client struct {
	conn    net.Conn
	version Version

	writeMu sync.Mutex // one command on the wire at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan reply
	subs    map[*subscription]struct{}
	err     error // why the connection ended, once it has

	done chan struct{} // closed when the read loop ends
}

type reply struct {
	Return json.RawMessage
	Err    *Error
}

// message is anything QEMU sends: a greeting, a reply or an event.
type message struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
	} `json:"QMP"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type subscription struct {
	ch chan Event
}

// Dial connects to the QMP socket at path, reads the greeting and leaves
// capability negotiation mode. ctx bounds the whole handshake.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	c, err := newClient(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func newClient(ctx context.Context, conn net.Conn) (*Client, error) {
	// The handshake runs before the read loop: ctx's end unblocks it
	// through the conn's deadline (and is then its error).
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	r := bufio.NewReaderSize(conn, 64<<10)
	dec := json.NewDecoder(r)
	var greeting message
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("qmp: read greeting: %w", ctxErr(ctx, err))
	}
	if greeting.QMP == nil {
		return nil, fmt.Errorf("qmp: the peer did not greet with QMP")
	}
	v := greeting.QMP.Version
	c := &Client{
		conn:    conn,
		version: Version{Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro, Package: v.Package},
		pending: map[string]chan reply{},
		subs:    map[*subscription]struct{}{},
		done:    make(chan struct{}),
	}
	if _, err := conn.Write([]byte(`{"execute":"qmp_capabilities"}` + "\n")); err != nil {
		return nil, fmt.Errorf("qmp: negotiate: %w", ctxErr(ctx, err))
	}
	// Events cannot arrive before negotiation ends, so the next message is its reply.
	var m message
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("qmp: negotiate: %w", ctxErr(ctx, err))
	}
	if m.Error != nil {
		return nil, fmt.Errorf("qmp: negotiate: %w", &Error{Class: m.Error.Class, Desc: m.Error.Desc})
	}
	if !stop() {
		return nil, fmt.Errorf("qmp: negotiate: %w", ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	go c.readLoop(dec)
	return c, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Version is QEMU's version, from its greeting.
func (c *Client) Version() Version { return c.version }

// Done is closed when the connection has ended: after Close, or when QEMU
// closed it (it exited).
func (c *Client) Done() <-chan struct{} { return c.done }

// Close ends the connection; pending Execute calls return ErrClosed and
// event channels are closed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		return nil // QEMU hung up first
	}
	return err
}

func (c *Client) readLoop(dec *json.Decoder) {
	var err error
	for {
		var m message
		if err = dec.Decode(&m); err != nil {
			break
		}
		switch {
		case m.Event != "":
			ev := Event{Name: m.Event, Data: m.Data}
			if m.Timestamp != nil {
				ev.Time = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
			}
			c.publish(ev)
		case m.ID != nil:
			var id string
			if json.Unmarshal(m.ID, &id) != nil {
				continue // not one of ours: we send string IDs
			}
			r := reply{Return: m.Return}
			if m.Error != nil {
				r.Err = &Error{Class: m.Error.Class, Desc: m.Error.Desc}
			}
			c.mu.Lock()
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- r // buffered
			}
		}
		// A reply without an id answers something we did not send
		// (QEMU's reply to unparsable input); nobody waits for it.
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	for s := range c.subs {
		close(s.ch)
		delete(c.subs, s)
	}
	c.mu.Unlock()
	c.conn.Close()
	close(c.done)
}

func (c *Client) publish(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		select {
		case s.ch <- ev:
		default: // the subscriber is not reading; see eventBuffer
		}
	}
}

// Events returns a channel of the events QEMU emits from now on, and a
// function that unsubscribes. The channel is closed when the connection
// ends or on unsubscribe. A subscriber that falls more than a few hundred
// events behind misses the newer ones.
func (c *Client) Events() (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, eventBuffer)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	return s.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[s]; ok {
			delete(c.subs, s)
			close(s.ch)
		}
	}
}

// Execute runs command with args (nil, or anything that encodes to a JSON
// object) and decodes its return value into result (nil to discard it). It
// returns a *Error (wrapped) when QEMU refuses the command, ErrClosed (wrapped) when
// the connection ends first, and ctx's error when ctx ends first; the
// command may still run then.
func (c *Client) Execute(ctx context.Context, command string, args any, result any) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	ch := make(chan reply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	data, err := json.Marshal(req)
	if err != nil {
		forget()
		return fmt.Errorf("qmp: %s: encode arguments: %w", command, err)
	}
	c.writeMu.Lock()
	// A write blocks only when QEMU stops reading; ctx bounds that too.
	stop := context.AfterFunc(ctx, func() { c.conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = c.conn.Write(append(data, '\n'))
	if !stop() {
		c.conn.SetWriteDeadline(time.Time{})
	}
	c.writeMu.Unlock()
	if err != nil {
		forget()
		if ctx.Err() != nil {
			// A partly written command would garble the stream: drop the connection.
			c.conn.Close()
			return fmt.Errorf("qmp: %s: %w", command, ctx.Err())
		}
		return fmt.Errorf("qmp: %s: %w: %v", command, ErrClosed, err)
	}

	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("qmp: %s: %w", command, err)
		}
		if r.Err != nil {
			return fmt.Errorf("qmp: %s: %w", command, r.Err)
		}
		if result != nil && len(r.Return) > 0 {
			if err := json.Unmarshal(r.Return, result); err != nil {
				return fmt.Errorf("qmp: %s: decode return: %w", command, err)
			}
		}
		return nil
	case <-ctx.Done():
		forget()
		return fmt.Errorf("qmp: %s: %w", command, ctx.Err())
	}
}
