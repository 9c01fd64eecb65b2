// Package daemon is Weft's composition root: it turns the configuration of
// `weft server`, `weft agent`, `weft storage` and `weft dev` into running
// parts, starts them in order and stops them in reverse order.
package daemon

import (
	"io"
	"log/slog"
	"time"

	"github.com/weftcloud/weft/internal/agent"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/untar"
)

// ServerConfig configures `weft server`, the fabric controller.
type ServerConfig struct {
	Data   string // state, packages; created if missing
	Listen string // REST API, e.g. 127.0.0.1:7070
	Name   string // this server's name; defaults to the host name

	// Public endpoints of web roles are bound on this host (e.g. 127.0.0.1 or 0.0.0.0).
	LBHost string

	// HeartbeatInterval is how often the controller tells nodes to
	// report while the fleet is small; past HeartbeatRate ×
	// HeartbeatInterval nodes it tells them nodes ÷ HeartbeatRate, so that
	// the whole fleet sends about HeartbeatRate heartbeats a second.
	// HeartbeatTTL: a node silent this long is declared down, or three
	// of its intervals if that is longer (fabric.Config).
	HeartbeatInterval time.Duration
	HeartbeatRate     float64
	HeartbeatTTL      time.Duration
	// The node-down wave guard: past DownWaveNodes ready nodes, more than
	// DownWaveFraction of them silent at once are declared down at most
	// DownWaveRate a second, and none while DownWaveHalt of them or more
	// are silent (fabric.Config). Zero: the default.
	DownWaveFraction float64
	DownWaveNodes    int
	DownWaveRate     float64
	DownWaveHalt     float64

	// Storage service ports on LBHost; StorageDisabled turns it off.
	StorageDisabled bool
	BlobPort        int
	QueuePort       int
	TablePort       int
	// DevAccount also serves the emulator's well-known development account
	// (devstoreaccount1); `weft dev` turns it on.
	DevAccount bool

	UpgradeTimeout time.Duration // an upgraded domain not healthy this long halts the upgrade
	// AllowPrivilegedPorts lets services publish endpoints below port 1024.
	AllowPrivilegedPorts bool
	Logger               *slog.Logger // nil: text logs on stderr

	// Raft cluster (issue 6).
	BootstrapExpect int
	Join            []string

	// TLSDir holds the cluster's credentials (weft tls init): the API is
	// served over TLS, callers are known by their certificate or token
	// (internal/access says what each may do), and servers talk to each
	// other (Raft included) over mutual TLS. Empty: plain HTTP, a server
	// alone on loopback whose admin token is in its data folder.
	TLSDir string
	// AgentCertLifetime is how long the certificates of joining and
	// renewing agents last; 0: pki.DefaultAgentLifetime. Tests shorten it
	// (a hidden flag) to see renewals within seconds.
	AgentCertLifetime time.Duration
}

// AgentConfig configures `weft agent`, the node agent.
type AgentConfig struct {
	Server      string // controller address(es), comma-separated
	Name        string
	Data        string
	FaultDomain string
	Listen      string  // the agent's own API (logs); default 127.0.0.1:0
	Host        string  // address where instances' ports are reachable; default 127.0.0.1
	CPU         float64 // capacity to offer; 0: the machine's
	Memory      int64   // bytes; 0: the machine's
	// UnpackPerArchive bounds what one image or package may unpack to, and
	// UnpackPerNode all of them unpacked on the node at once (the image
	// cache and every instance's copy of its package); bytes, 0: the
	// defaults below.
	UnpackPerArchive int64
	UnpackPerNode    int64

	HeartbeatInterval time.Duration
	Logger            *slog.Logger

	// TLSDir holds the agent's credentials (ca.pem, agent.pem,
	// agent-key.pem), which it got for the join token (DATA/tls): it calls
	// the servers and serves its API over mutual TLS.
	TLSDir string
	// JoinToken and CACert join a cluster with TLS instead: on its first
	// start the agent trades the token for a certificate of its own, kept
	// in DATA/tls.
	JoinToken string
	CACert    string

	// noRuntime, when set, hears of each runtime this host cannot offer
	// and why; `weft dev` tells the person at its terminal.
	noRuntime func(runtime string, reason error)
}

// StorageConfig configures `weft storage`, the storage service alone.
type StorageConfig struct {
	Data      string
	Host      string
	BlobPort  int
	QueuePort int
	TablePort int
	// Accounts lists the accounts served and their keys in the storage
	// emulator's form (storage.ParseAccounts): "name:key1[:key2];...".
	// Empty serves the development account; a list serves only its
	// accounts, as the emulator does.
	Accounts string
	// MetricsListen is storageserver.Config.MetricsListen.
	MetricsListen string
	Logger        *slog.Logger
}

// DevConfig configures `weft dev`: a controller, the storage service and
// Nodes agents (fault domains fd1..fdN) in one process.
type DevConfig struct {
	Data   string // default ./.weft
	Nodes  int    // default 3
	Listen string // default 127.0.0.1:7070
	Logger *slog.Logger
	// Stdout and Stderr take the few lines meant for the person at the
	// terminal rather than the log: where the API and the development
	// storage account are, and which runtimes this host cannot offer.
	// Nil: not printed.
	Stdout, Stderr io.Writer
}

// Defaults the CLI shows in --help. Those of a part are the part's own
// (set where the part fills in its configuration), named here again.
const (
	DefaultListen            = "127.0.0.1:7070"
	DefaultHeartbeatInterval = agent.DefaultHeartbeatInterval
	DefaultHeartbeatRate     = fabric.DefaultHeartbeatRate
	DefaultHeartbeatTTL      = fabric.DefaultHeartbeatTTL
	DefaultDownWaveFraction  = fabric.DefaultDownWaveFraction
	DefaultDownWaveNodes     = fabric.DefaultDownWaveNodes
	DefaultDownWaveRate      = fabric.DefaultDownWaveRate
	DefaultDownWaveHalt      = fabric.DefaultDownWaveHalt
	DefaultUpgradeTimeout    = fabric.DefaultUpgradeTimeout
	DefaultBlobPort          = 10000
	DefaultQueuePort         = 10001
	DefaultTablePort         = 10002
	DefaultUnpackPerArchive  = untar.DefaultMaxBytes
	DefaultUnpackPerNode     = untar.DefaultBudget
)
