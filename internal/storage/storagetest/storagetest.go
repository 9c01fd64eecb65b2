// Package storagetest serves one storage service's front end with the
// development account on a loopback port, so tests can point the official
// Azure SDK clients at a real socket.
package storagetest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Serve starts svc's front end around h on 127.0.0.1 with the development
// account and returns the account's path-style endpoint, e.g.
// "http://127.0.0.1:PORT/devstoreaccount1". The server stops when the test
// ends.
func Serve(t testing.TB, svc storage.Service, h storage.Handler) (endpoint string) {
	t.Helper()
	return ServeAccounts(t, svc, h, storage.DevAccounts())
}

// ServeAccounts is Serve with other accounts; the endpoint names the
// development account.
func ServeAccounts(t testing.TB, svc storage.Service, h storage.Handler, accounts storage.Accounts) (endpoint string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("storagetest: listen: %v", err)
	}
	tw := &testWriter{t: t}
	logger := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := &http.Server{Handler: storage.NewFront(svc, accounts, h, nil, logger), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- storage.Serve(srv, ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		tw.done.Store(true)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("storagetest: serve: %v", err)
		}
	})
	return fmt.Sprintf("http://%s/%s", ln.Addr(), storage.DevAccount)
}

// ConnectionString returns a connection string for the development account
// with the given endpoints; an empty endpoint is left out.
func ConnectionString(blob, queue, table string) string {
	s := "DefaultEndpointsProtocol=http;AccountName=" + storage.DevAccount + ";AccountKey=" + storage.DevKey + ";"
	for _, e := range []struct{ name, url string }{{"BlobEndpoint", blob}, {"QueueEndpoint", queue}, {"TableEndpoint", table}} {
		if e.url != "" {
			s += e.name + "=" + e.url + ";"
		}
	}
	return s
}

// testWriter sends the front end's log to the test's log.
// testing.T panics on a Log after the test ends, and a handler that was
// still running when the server closed may log then: done drops those.
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
