package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/state"
)

// Recover makes the stopped server whose data is in dataDir (its Raft ID
// id) one of a cluster of exactly peers, for a cluster that lost its
// quorum for good: a majority of its servers is gone, so no leader can be
// elected and remove-peer, which needs one, cannot help. Run it on every
// surviving server with the same peers, then start them: they elect a
// leader among themselves. As with Consul's and Nomad's peers.json, what
// only the lost servers had committed is lost, and a lost server must not
// come back with its old data.
//
// It refuses a server that is running (its log is locked) and peers that
// do not include id.
func Recover(dataDir, id string, peers []Peer, log *slog.Logger) error {
	if len(peers) == 0 {
		return errors.New("raftstore: recover: no peers given")
	}
	conf := raft.Configuration{}
	self := false
	for _, p := range peers {
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("raftstore: recover: peer %+v needs a name and a Raft address", p)
		}
		self = self || p.ID == id
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	if !self {
		return fmt.Errorf("raftstore: recover: the peers do not include this server (%s)", id)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err != nil {
		return fmt.Errorf("raftstore: recover: %s holds no Raft state: %w", dataDir, err)
	}
	db, err := state.Open(filepath.Join(dataDir, "state.db"), log)
	if err != nil {
		return fmt.Errorf("raftstore: recover: %w (is the server still running? stop it first)", err)
	}
	defer db.Close()
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dataDir, "raft.db"),
		BoltOptions: &bolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return fmt.Errorf("raftstore: recover: open log: %w (is the server still running? stop it first)", err)
	}
	defer logs.Close()
	hclogger := newHCLogger(log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, defaultSnapshotsRetained, hclogger)
	if err != nil {
		return fmt.Errorf("raftstore: recover: open snapshots: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = hclogger
	_, trans := raft.NewInmemTransport("")
	f := &fsm{db: db, log: log}
	if err := raft.RecoverCluster(rc, f, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("raftstore: recover: %w", err)
	}
	return f.failure()
}
