package raftstore

import (
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// logStore is the Raft log and stable store, raft-boltdb's, made safe to
// close. hashicorp/raft answers a heartbeat on the transport's own
// goroutine, which may still be inside one when Shutdown has returned; its
// write of the term to a closed store fails, and raft panics on that
// ("failed to save current term: database not open"). A write after
// Close parks its goroutine instead, until the process ends: nothing is
// written, so nothing is answered.
type logStore struct {
	*raftboltdb.BoltStore
	mu     sync.RWMutex
	closed bool
}

// write runs f unless the store is closed.
func (l *logStore) write(f func() error) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		select {}
	}
	defer l.mu.RUnlock()
	return f()
}

func (l *logStore) StoreLog(log *raft.Log) error {
	return l.write(func() error { return l.BoltStore.StoreLog(log) })
}

func (l *logStore) StoreLogs(logs []*raft.Log) error {
	return l.write(func() error { return l.BoltStore.StoreLogs(logs) })
}

func (l *logStore) DeleteRange(min, max uint64) error {
	return l.write(func() error { return l.BoltStore.DeleteRange(min, max) })
}

func (l *logStore) Set(k, v []byte) error {
	return l.write(func() error { return l.BoltStore.Set(k, v) })
}

func (l *logStore) SetUint64(key []byte, val uint64) error {
	return l.write(func() error { return l.BoltStore.SetUint64(key, val) })
}

// Close closes the store once no write is under way.
func (l *logStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.BoltStore.Close()
}
