package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

// echoServer is a TCP backend that echoes until the client half-closes.
func echoServer(t testing.TB, id string) Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return Backend{ID: id, Addr: ln.Addr().String()}
}

func publishTCP(t testing.TB, b *Balancer, bes ...Backend) string {
	t.Helper()
	port := freePort(t)
	if err := b.Update([]Endpoint{{Key: "s/db/tcp", Protocol: "tcp", Port: port, Backends: bes}}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func TestTCPEcho(t *testing.T) {
	tests := []struct {
		name     string
		backends func(t *testing.T) []Backend
		want     string // "" : the balancer hangs up
	}{
		{"one backend", func(t *testing.T) []Backend { return []Backend{echoServer(t, "e")} }, "ping"},
		{"unreachable first", func(t *testing.T) []Backend {
			return []Backend{{ID: "dead", Addr: deadAddr(t)}, echoServer(t, "e")}
		}, "ping"},
		{"no backend", func(*testing.T) []Backend { return nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(t)
			addr := publishTCP(t, b, tt.backends(t)...)
			for range 4 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprint(c, "ping")
				c.(*net.TCPConn).CloseWrite() // the echo ends when it sees our end
				got, _ := io.ReadAll(c)
				c.Close()
				if string(got) != tt.want {
					t.Fatalf("through the balancer: %q, want %q", got, tt.want)
				}
			}
			st := b.Stats()[0]
			wantFailures := int64(0)
			if tt.want == "" {
				wantFailures = 4
			}
			if st.Requests != 4 || st.Failures != wantFailures {
				t.Errorf("stats %+v, want 4 connections and %d failures", st, wantFailures)
			}
		})
	}
}

func TestTCPDrainWaitsForConnections(t *testing.T) {
	b := newBalancer(t)
	addr := publishTCP(t, b, echoServer(t, "e"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "x")
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := b.Update([]Endpoint{{Key: "s/db/tcp", Protocol: "tcp", Port: b.Stats()[0].Port}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Drain(ctx, "e"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a connection open: %v", err)
	}
	// The connection still works after its backend was removed.
	fmt.Fprint(c, "y")
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'y' {
		t.Fatalf("connection after removal: %q %v", buf, err)
	}
	drained := make(chan error, 1)
	go func() { drained <- b.Drain(context.Background(), "e") }()
	waitFor(t, "Drain to wait", func() bool { return parked(b, "e") })
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

// TestWithdrawnPortsRunOnUntilClose removes an HTTP and a TCP port while each
// has work in flight: the work goes on after the ports are freed, and Close
// cuts it.
func TestWithdrawnPortsRunOnUntilClose(t *testing.T) {
	b := New("127.0.0.1", nil)
	slow := newBackend(t, "slow")
	hp, tp := freePort(t), freePort(t)
	if err := b.Update([]Endpoint{
		{Key: "h", Port: hp, Backends: []Backend{slow.Backend}},
		{Key: "t", Protocol: "tcp", Port: tp, Backends: []Backend{echoServer(t, "e")}},
	}); err != nil {
		t.Fatal(err)
	}
	httpErr := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/block", hp))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		httpErr <- err
	}()
	<-slow.entered
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	fmt.Fprint(c, "a")
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(nil); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "b")
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'b' {
		t.Fatalf("TCP connection after its port was withdrawn: %q %v", buf, err)
	}
	b.Close()
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("TCP connection after Close: %v", err)
	}
	if err := <-httpErr; err == nil {
		t.Error("the HTTP request in flight survived Close")
	}
	if err := b.Drain(t.Context(), "slow"); err != nil {
		t.Errorf("drain after Close: %v", err)
	}
}
