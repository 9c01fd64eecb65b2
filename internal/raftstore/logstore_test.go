package raftstore

import (
	"path/filepath"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestWriteAfterCloseIsParked: a term written after the log store closed
// (a heartbeat the transport was still answering during shutdown) never
// returns the error raft panics on.
func TestWriteAfterCloseIsParked(t *testing.T) {
	bolted, err := raftboltdb.NewBoltStore(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	l := &logStore{BoltStore: bolted}
	if err := l.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.SetUint64([]byte("CurrentTerm"), 2) }()
	select {
	case err := <-done:
		t.Fatalf("a write after close returned (%v): raft panics on its error", err)
	case <-time.After(200 * time.Millisecond):
	}
}
