// Package raftstore replicates the controller's state (internal/state)
// across 1, 3 or 5 servers with hashicorp/raft. A single server is a
// one-member cluster on the same code path.
//
// Every Apply becomes one Raft log entry holding the batch; once the entry
// is committed, every server's FSM applies it to its own state.DB (bbolt)
// at the entry's log index, so a batch's index and its entries' Rev are the
// same number on every server. The state database remembers the last index
// it applied: a restarting server resumes from there instead of replaying
// the log or restoring a snapshot, and Raft snapshots (log compaction,
// catching up a far-behind follower) are state.DB snapshot streams.
//
// Writes are served by the leader only: elsewhere Apply returns
// ErrNotLeader naming the leader, for the caller to forward the request.
// Reads (Get, List, Wait) are served by every server from its local copy
// and may be slightly stale on followers; Consistent makes a read on the
// leader linearizable.
//
// On disk, Config.DataDir holds raft.db (the log and Raft's own state),
// snapshots/ and state.db.
package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/vfs"
)

// Store is one server of a replicated state store.
type Store struct {
	cfg   Config
	log   *slog.Logger
	db    *state.DB
	fsm   *fsm
	raft  *raft.Raft
	logs  *logStore
	trans *raft.NetworkTransport

	// readyTerm is the term in which this server, as leader, has applied
	// every entry committed before its term (0: not established).
	readyTerm atomic.Uint64

	verify verifyRounds // Consistent's leadership checks, shared by the reads waiting at once

	closing   atomic.Bool
	done      chan struct{} // closed by Close: stops watch
	watchDone chan struct{}
	failedCh  chan struct{} // closed when the FSM fails
	failOnce  sync.Once

	subMu     sync.Mutex
	subs      []chan bool
	leaderNow bool // the last value sent to subs
	subsDone  bool

	figures *figures
}

var _ state.Store = (*Store)(nil)

// Open starts the server: it opens or creates the data directory, listens
// on BindAddr and joins or forms the cluster as Config describes. It does
// not wait for a leader; see LeaderCh.
func Open(cfg Config) (*Store, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Its parents are synced so that the folder survives a power cut.
	if err := vfs.MkdirPrivate(vfs.OS, c.DataDir); err != nil {
		return nil, fmt.Errorf("raftstore: open: %w", err)
	}
	s := &Store{
		figures:   newFigures(),
		cfg:       c,
		log:       c.Logger.With("node", c.NodeID),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),
		failedCh:  make(chan struct{}),
	}
	// Undo whatever was opened when a later step fails.
	var closers []func() error
	ok := false
	defer func() {
		if !ok {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if s.db, err = state.Open(filepath.Join(c.DataDir, "state.db"), s.log); err != nil {
		return nil, fmt.Errorf("raftstore: open: %w", err)
	}
	closers = append(closers, s.db.Close)
	bolted, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(c.DataDir, "raft.db"),
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	s.logs = &logStore{BoltStore: bolted}
	closers = append(closers, s.logs.Close)
	hclogger := newHCLogger(s.log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.DataDir, c.SnapshotsRetained, hclogger)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open snapshots: %w", err)
	}
	// bbolt and the snapshot store sync what they write into raft.db and
	// snapshots/, not those names in DataDir: without this a power cut
	// could lose a new log with every entry acknowledged to it.
	if err := vfs.OS.SyncDir(c.DataDir); err != nil {
		return nil, fmt.Errorf("raftstore: open: sync %s: %w", c.DataDir, err)
	}
	if err := catchUp(s.db, s.logs, snaps, s.log); err != nil {
		return nil, err
	}
	existing, err := raft.HasExistingState(s.logs, s.logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open: %w", err)
	}
	if !existing && s.db.Index() > 0 && !c.Bootstrap {
		// Its entries would collide with the log's first indexes.
		return nil, fmt.Errorf("raftstore: open: %s has state (index %d) but there is no Raft log: only a server that bootstraps (Config.Bootstrap) can adopt it; remove it to join a cluster",
			filepath.Join(c.DataDir, "state.db"), s.db.Index())
	}
	cache, err := raft.NewLogCache(1024, s.logs)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open: %w", err)
	}

	var advertise net.Addr
	if c.Advertise != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", c.Advertise); err != nil {
			return nil, fmt.Errorf("raftstore: advertise address: %w", err)
		}
	}
	// One AppendEntries in flight per follower: hashicorp/raft's pipelined
	// replication (MaxRPCsInFlight 2, its default) can deadlock when a
	// follower answers Success=false, as one restarted with a shorter log
	// does: its decoder stops, the sender blocks forever on a full
	// pipeline, that follower is never replicated to again while its
	// heartbeats go on, and the leader's shutdown waits for the sender
	// forever (seen in e2e's rolling restart of servers: a SIGTERMed leader
	// that did not exit for 20 minutes; hashicorp/raft#612). Raft's own
	// measurements found pipelining of little use beside batching
	// (hashicorp/raft#541).
	transport := &raft.NetworkTransportConfig{MaxPool: 3, MaxRPCsInFlight: 1, Timeout: 10 * time.Second, Logger: hclogger}
	switch {
	case c.Local:
		var stream *localStream
		if stream, err = newLocalStream(c.BindAddr); err == nil {
			transport.Stream = stream
			s.trans = raft.NewNetworkTransportWithConfig(transport)
		}
	case c.TLS != nil:
		var stream *tlsStream
		if stream, err = newTLSStream(c.BindAddr, advertise, c.TLS); err == nil {
			transport.Stream = stream
			s.trans = raft.NewNetworkTransportWithConfig(transport)
		}
	default:
		s.trans, err = raft.NewTCPTransportWithConfig(c.BindAddr, advertise, transport)
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: listen %s: %w", c.BindAddr, err)
	}
	closers = append(closers, s.trans.Close)

	s.fsm = &fsm{db: s.db, log: s.log, onFail: func(error) {
		s.failOnce.Do(func() { close(s.failedCh) })
	}}
	rc := c.raftConfig()
	rc.Logger = hclogger
	if s.raft, err = raft.NewRaft(rc, s.fsm, cache, s.logs, snaps, s.trans); err != nil {
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	closers = append(closers, func() error { return s.raft.Shutdown().Error() })

	if !existing {
		if err := s.bootstrap(); err != nil {
			return nil, err
		}
		if s.db.Index() > 0 {
			if err := s.adopt(10 * c.ElectionTimeout); err != nil {
				return nil, err
			}
		}
	}
	go s.watch()
	ok = true
	s.log.Info("raftstore: started", "addr", s.trans.LocalAddr(), "index", s.db.Index(), "resumed", existing)
	return s, nil
}

// bootstrap writes the first configuration of a new cluster, if Config
// asks this server to.
func (s *Store) bootstrap() error {
	var conf raft.Configuration
	switch {
	case s.cfg.Bootstrap:
		conf.Servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.NodeID), Address: s.trans.LocalAddr()}}
	case len(s.cfg.Peers) > 0:
		for _, p := range s.cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
	default:
		return nil // wait to be added by the leader
	}
	if err := s.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("raftstore: bootstrap: %w", err)
	}
	return nil
}

// Apply proposes the batch and waits until it is committed on a quorum and
// applied here, returning its index (the Raft log index). A failed check
// returns state.ErrConflict and a malformed op state.ErrInvalid, as with
// state.DB. On a follower it returns ErrNotLeader; when leadership is lost
// after the batch entered the log, ErrUnknownOutcome; once this server
// failed to write its state, ErrFailed. ctx bounds only the wait to enter
// the log: once it is in, Apply waits for the outcome, which
// takes at most about a leader lease.
func (s *Store) Apply(ctx context.Context, ops []state.Op) (uint64, error) {
	if s.closing.Load() {
		return 0, state.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := state.Validate(ops); err != nil {
		return 0, err
	}
	if err := s.fsm.failure(); err != nil {
		return 0, err
	}
	if s.raft.State() != raft.Leader {
		return 0, s.notLeader()
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	f := s.raft.Apply(encodeBatch(ops), timeout)
	answered, err := s.await(f)
	s.figures.observeApply(start, err)
	if !answered {
		return 0, fmt.Errorf("raftstore: apply: %w: the server stopped", ErrUnknownOutcome)
	}
	if err != nil {
		return 0, s.applyError("apply", err)
	}
	res, ok := f.Response().(applyResult)
	if !ok {
		return 0, fmt.Errorf("raftstore: apply: unexpected FSM response %T", f.Response())
	}
	return res.index, res.err
}

// Get returns the local copy of kind/key (stale-ok on a follower).
func (s *Store) Get(kind, key string) (state.Entry, bool) { return s.db.Get(kind, key) }

// List returns the local entries of kind under prefix, sorted by key.
func (s *Store) List(kind, prefix string) []state.Entry { return s.db.List(kind, prefix) }

// Since is state.Journal's.
func (s *Store) Since(kind string, after uint64) ([]state.Entry, []string, uint64, bool) {
	return s.db.Since(kind, after)
}

// ListAfter is state.Store's.
func (s *Store) ListAfter(kind, prefix, after string, n int) []state.Entry {
	return s.db.ListAfter(kind, prefix, after, n)
}

// Index is the log index of the last batch applied here.
func (s *Store) Index() uint64 { return s.db.Index() }

// Wait blocks until this server has applied a batch above after.
func (s *Store) Wait(ctx context.Context, after uint64) (uint64, error) {
	return s.db.Wait(ctx, after)
}

// Snapshot writes this server's state to w, in state.DB's format, for a
// backup: on a follower it may lag the leader slightly (call it on the
// leader after Consistent for the latest state).
func (s *Store) Snapshot(w io.Writer) error { return s.db.Snapshot(w) }

// Restore replaces the whole cluster's state with a backup written by
// Snapshot (of a cluster or of a single state.DB). It runs on the leader
// and is meant for disaster recovery onto a fresh cluster: the stream is
// checked completely before Raft sees it, then the leader installs it and
// sends it to the followers. Batches in flight are aborted. Other servers
// return ErrNotLeader; a bad stream, state.ErrBadSnapshot.
func (s *Store) Restore(r io.Reader) error {
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	// Raft wants the size up front and cannot undo a half-read stream:
	// spool it to disk and check it first.
	tmp, err := os.CreateTemp(s.cfg.DataDir, "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r)
	if err != nil {
		return fmt.Errorf("raftstore: restore: spool: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	backup, err := state.ReadCapture(tmp)
	if err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	if len(s.cfg.KeepOnRestore) > 0 {
		for _, kind := range s.cfg.KeepOnRestore {
			backup.Replace(kind, s.db.List(kind, ""))
		}
		if err := rewrite(tmp, backup.Write); err != nil {
			return fmt.Errorf("raftstore: restore: %w", err)
		}
		if size, err = tmp.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("raftstore: restore: %w", err)
		}
	}
	index := backup.Index()
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	// Raft continues its log above max(its last index, meta.Index), so
	// later batches get indexes above every Rev in the backup.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: size}
	if err := s.raft.Restore(meta, tmp, s.cfg.ApplyTimeout); err != nil {
		return s.applyError("restore", err)
	}
	s.log.Info("raftstore: restored backup", "backup_index", index, "log_index", s.raft.LastIndex())
	// The backup carries another cluster's leader record.
	s.announce()
	return nil
}

// rewrite replaces f's contents with what write writes.
func rewrite(f *os.File, write func(io.Writer) error) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return write(f)
}

// Close stops the server. A leader first hands leadership to an up-to-date
// follower, so the cluster does not wait out an election timeout. Later
// calls return state.ErrClosed.
func (s *Store) Close() error {
	return s.shutdown(true)
}

// await waits for f's answer, or until the store closes (answered is then
// false): hashicorp/raft never answers an Apply or a Barrier still queued
// for its leader loop when it shuts down, so waiting on the future alone
// can hang Close forever. The goroutine of such a future stays blocked.
func (s *Store) await(f raft.Future) (answered bool, err error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return true, err
	case <-s.done:
		return false, nil
	}
}

// StepDown hands leadership to an up-to-date follower when this server
// leads a cluster of more than one voter, so that a server about to stop
// does so as a follower: its leader-only work has stopped and the others
// have a leader before it stops answering.
func (s *Store) StepDown() error {
	if s.raft.State() != raft.Leader || s.voters() < 2 {
		return nil
	}
	return s.raft.LeadershipTransfer().Error()
}

// shutdown stops the server; without transfer it is what a crash looks
// like to the others.
func (s *Store) shutdown(transfer bool) error {
	if !s.closing.CompareAndSwap(false, true) {
		return state.ErrClosed
	}
	if transfer && s.raft.State() == raft.Leader && s.voters() > 1 {
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("raftstore: leadership transfer on close failed", "err", err)
		}
	}
	close(s.done)
	var errs []error
	if err := s.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raftstore: close raft: %w", err))
	}
	<-s.watchDone
	s.trans.Close() // also closed by raft; closing twice is harmless
	if err := s.logs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raftstore: close log: %w", err))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raftstore: close state: %w", err))
	}
	s.closeSubs()
	return errors.Join(errs...)
}

func (s *Store) voters() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}
