package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzClient feeds any bytes to the host's Client as what the guest sends,
// while a ping is in flight. Properties: the client never panics; the ping
// ends (answered, refused or ErrClosed) and Done closes once the guest side
// is gone, rather than hanging.
func FuzzClient(f *testing.F) {
	f.Add([]byte(`{"id":0,"op":"ready","ok":true,"hostname":"vm1","addresses":["10.0.0.2"],"bootMillis":1500}` + "\n" +
		`{"id":1,"ok":true,"hostname":"vm1","uptime":12.5,"load":[0.1,0.2,0.3]}` + "\n"))
	f.Add([]byte(`{"id":1,"ok":false,"error":"unknown op \"x\""}` + "\n"))
	f.Add([]byte(`{"id":1,"ok":true,"exitCode":3,"stdout":"aGk=","stdoutTruncated":true}`))
	f.Add([]byte("this is not json\n{\"id\":1,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		host, guest := net.Pipe()
		c := NewClient(host)
		defer c.Close()
		go func() { _, _ = io.Copy(io.Discard, guest) }()
		ping := make(chan error, 1)
		go func() {
			_, err := c.Ping(context.Background())
			ping <- err
		}()
		_, _ = guest.Write(in)
		guest.Close()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the client did not see the guest go")
		}
		select {
		case err := <-ping:
			var gerr *Error
			if err != nil && !errors.Is(err, ErrClosed) && !errors.As(err, &gerr) {
				t.Fatalf("ping ended with %v, want an answer, an *Error or ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the ping hung after the guest was gone")
		}
	})
}

// FuzzAgentServe feeds any lines to the guest agent as what the host
// sends. Inputs that ask it to run, start or shut down anything are
// skipped: the fuzzer would run commands on this machine. Properties: the
// agent never panics; it says hello, then answers every non-blank line
// exactly once, with valid JSON, carrying the id of each line that is a
// request.
func FuzzAgentServe(f *testing.F) {
	f.Add([]byte(`{"id":1,"op":"ping"}` + "\n" + `{"id":2,"op":"status"}` + "\n" + `{"id":3,"op":"settime","unixNanos":1700000000000000000}` + "\n" + `{"id":4,"op":"sync"}` + "\n"))
	f.Add([]byte("this is not json\n" + `{"id":5,"op":"ping","cmd":"not a list"}` + "\n" + `{"id":6,"op":"frobnicate"}` + "\n\n  \n" + `{"id":7,"op":"ping"}`))
	f.Add([]byte(`{"id":8,"op":"settime","unixNanos":-1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var wantIDs []int64
		lines := 0
		for l := range bytes.SplitSeq(in, []byte("\n")) {
			l = bytes.TrimSpace(l)
			if len(l) == 0 {
				continue
			}
			lines++
			var req request
			if json.Unmarshal(l, &req) != nil {
				continue
			}
			switch req.Op {
			case OpExec, OpStart, OpShutdown:
				return
			}
			wantIDs = append(wantIDs, req.ID)
		}
		a := New(newFakeMachine().options(io.Discard))
		host, guest := socketPair(t)
		defer host.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		served := make(chan error, 1)
		go func() { served <- a.Serve(ctx, guest) }()
		go func() {
			_, _ = host.Write(in)
			_ = host.(*net.UnixConn).CloseWrite()
		}()
		_ = host.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(host)
		gotIDs := map[int64]int{}
		for i := range lines + 1 {
			line, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatalf("%d answers to %d lines, then %v", i-1, lines, err)
			}
			var m response
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("answer %q is not JSON: %v", line, err)
			}
			if i == 0 {
				if m.Op != OpReady {
					t.Fatalf("first message %q is not the hello", line)
				}
				continue
			}
			gotIDs[m.ID]++
		}
		for _, id := range wantIDs {
			if gotIDs[id] == 0 {
				t.Fatalf("no answer carries the id %d of a request (answers: %v)", id, gotIDs)
			}
			gotIDs[id]--
		}
		if err := <-served; !errors.Is(err, io.EOF) {
			t.Fatalf("Serve ended with %v, want EOF", err)
		}
		guest.Close()
	})
}
