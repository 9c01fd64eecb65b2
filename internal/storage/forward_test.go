package storage_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// TestForwardGivesUpOnAMovedTarget holds a forwarded request at a server
// that never answers, as a primary cut off by a partition would, and
// names another: the request is answered 503 ServerBusy, which clients
// retry, at once rather than when the client gives up, and the next
// request reaches the new server.
func TestForwardGivesUpOnAMovedTarget(t *testing.T) {
	held, gone, release := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held <- struct{}{}
		select {
		case <-r.Context().Done(): // the forwarder hung up
			close(gone)
		case <-release: // the test ends
		}
	}))
	defer silent.Close()
	newer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "new primary")
	}))
	defer newer.Close()
	var target atomic.Pointer[string]
	target.Store(&silent.URL)
	fwd := httptest.NewServer(storage.NewForward(storage.Blob, func() string { return *target.Load() }, slog.New(slog.DiscardHandler)))
	defer fwd.Close()
	defer close(release)

	answer := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(fwd.URL + "/acct/c/b")
		if err != nil {
			t.Error(err)
			close(answer)
			return
		}
		answer <- resp
	}()
	<-held
	moved := time.Now()
	target.Store(&newer.URL)
	select {
	case resp, ok := <-answer:
		if !ok {
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("x-ms-error-code") != "ServerBusy" {
			t.Errorf("held request after the move: %s %q; want 503 ServerBusy", resp.Status, resp.Header.Get("x-ms-error-code"))
		}
		t.Logf("answered %s after the move", time.Since(moved).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the request held at the old server is still waiting 10s after the move")
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Error("the forwarded request to the old server was not cancelled")
	}

	resp, err := http.Get(fwd.URL + "/acct/c/b")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != "new primary" {
		t.Errorf("next request: %s %q; want 200 from the new server", resp.Status, body)
	}
}
