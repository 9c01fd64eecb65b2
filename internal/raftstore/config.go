package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Config describes one server of the cluster.
//
// A cluster forms in one of three ways, chosen by the first server's data
// directory being empty:
//   - Bootstrap: this server starts a one-member cluster (a single server
//     is exactly this); others are added later with Join on the leader.
//   - Peers: every server is given the same full list of voters, itself
//     included, and bootstraps that configuration; Raft accepts the same
//     bootstrap from all of them, and they elect a leader as soon as a
//     majority is up.
//   - neither: the server waits, empty, until the leader adds it (Join).
//
// A server with existing Raft state ignores all three and resumes.
type Config struct {
	NodeID    string // unique and stable for the server's lifetime
	BindAddr  string // Raft TCP listen address, e.g. "0.0.0.0:7001" or "127.0.0.1:0"
	Advertise string // Raft address others dial; defaults to the bound address
	API       string // optional API address, announced by the leader for request forwarding
	DataDir   string // holds raft.db (log), snapshots/ and state.db (the FSM)

	// TLS, when set, runs Raft over mutual TLS: Certificates and RootCAs
	// (the cluster's CA) are used both to serve and to dial.
	TLS *tls.Config
	// Local makes a server that stays alone: Raft listens nowhere and
	// BindAddr is only its name. A server without TLS is one, since
	// nothing would tell its peers from anyone else on the machine.
	Local bool

	Bootstrap bool
	Peers     []Peer

	// Failure detection. Zero values pick the defaults below, tuned for a
	// LAN: a dead leader is replaced in about one to two seconds. A leader
	// steps down when it has not heard from a quorum for the lease: at
	// 250 ms, two servers left after a leader's loss, on a loaded machine
	// (1,000 nodes' heartbeats, a heal's writes), lost contact that long
	// every few seconds and spent most of a minute in elections; the lease
	// is now the heartbeat timeout, the longest hashicorp/raft allows.
	HeartbeatTimeout   time.Duration // default 500ms
	ElectionTimeout    time.Duration // default 500ms
	LeaderLeaseTimeout time.Duration // default 500ms

	// Log compaction: a snapshot is taken when SnapshotThreshold entries
	// have accumulated (checked every SnapshotInterval), keeping the last
	// TrailingLogs entries so that a briefly absent follower catches up
	// from the log rather than a snapshot.
	SnapshotThreshold uint64        // default 8192
	SnapshotInterval  time.Duration // default 30s
	TrailingLogs      uint64        // default 4096
	SnapshotsRetained int           // default 2

	// KeepOnRestore are kinds of entries that describe this cluster's own
	// hosts rather than what it runs (where the storage's data lives): a
	// restore keeps the cluster's entries of these kinds, not the backup's.
	KeepOnRestore []string

	// ApplyTimeout bounds how long Apply waits to hand a batch to Raft
	// when ctx has no deadline. Default 5s.
	ApplyTimeout time.Duration

	Logger *slog.Logger
}

// Peer is a voting member of the cluster.
type Peer struct {
	ID   string
	Addr string // Raft address
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.NodeID == "" {
		return d, errors.New("raftstore: config: NodeID is required")
	}
	if d.BindAddr == "" || d.DataDir == "" {
		return d, errors.New("raftstore: config: BindAddr and DataDir are required")
	}
	if d.Bootstrap && len(d.Peers) > 0 {
		return d, errors.New("raftstore: config: Bootstrap and Peers exclude each other")
	}
	if len(d.Peers) > 0 {
		self := false
		for _, p := range d.Peers {
			self = self || p.ID == d.NodeID
		}
		if !self {
			return d, fmt.Errorf("raftstore: config: Peers must list this server (%s)", d.NodeID)
		}
	}
	setDefault(&d.HeartbeatTimeout, 500*time.Millisecond)
	setDefault(&d.ElectionTimeout, 500*time.Millisecond)
	setDefault(&d.LeaderLeaseTimeout, 500*time.Millisecond)
	setDefault(&d.SnapshotThreshold, 8192)
	setDefault(&d.SnapshotInterval, 30*time.Second)
	setDefault(&d.TrailingLogs, 4096)
	setDefault(&d.SnapshotsRetained, defaultSnapshotsRetained)
	setDefault(&d.ApplyTimeout, 5*time.Second)
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// raftConfig is hashicorp/raft's configuration for c.
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	// Followers learn the commit index on the next append; without new
	// writes that is CommitTimeout later, which bounds how stale a
	// follower's reads are after a write.
	rc.CommitTimeout = 10 * time.Millisecond
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// Let concurrent Applies join one append (and one fsync).
	rc.BatchApplyCh = true
	// The FSM's database survives restarts and knows what it has applied:
	// restoring the last snapshot on every start would throw that away.
	// Open restores it only when the database is behind the snapshot.
	rc.NoSnapshotRestoreOnStart = true
	return rc
}

// defaultSnapshotsRetained is how many snapshots a server keeps.
const defaultSnapshotsRetained = 2
