// Package replicated runs a server's part of the replicated storage: its
// storage is the primary, which serves and ships every change to the
// others (internal/storage/replica), or a replica, which applies them and
// passes clients' requests on to the primary, as the replicated state's
// placement says (internal/storage/placement).
package replicated

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/placement"
	"github.com/weftcloud/weft/internal/storage/replica"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// Lease is how long a primary serves without hearing from the Raft
// leader; the leader replaces a primary only after twice that without
// an answer from it (placement.Reconciler).
const Lease = 3 * time.Second

// Config configures a Node.
type Config struct {
	Self      placement.Member
	Dir       string      // the storage directory
	State     state.Store // this server's copy of the replicated state
	Placement Placement
	Peers     *http.Client // to other servers' APIs (mutual TLS in a TLS cluster)
	Storage   *storageserver.Server
	// InContact says whether this server leads or heard from the leader
	// within the lease.
	InContact func(time.Duration) bool
	Logger    *slog.Logger
}

// Placement changes the storage placement through the servers' API, which
// passes writes to the leader; client.Client is one. A stale epoch is an
// api.ErrConflict.
type Placement interface {
	RegisterStorageMember(ctx context.Context, m placement.Member) error
	AddInSync(ctx context.Context, epoch uint64, name string) error
	DropInSync(ctx context.Context, epoch uint64, name string) error
	RestartInSync(ctx context.Context, epoch uint64, name string) error
}

// Node is this server's storage in the replicated storage.
type Node struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	receiver *replica.Receiver // while a replica
	shipper  *replica.Shipper  // while the primary
	epoch    uint64            // the epoch served as primary
	copying  map[string]time.Time
	backoff  map[string]time.Duration
	serving  chan struct{} // closed once the storage serves or forwards
}

// New returns a node; Run runs it.
func New(cfg Config) *Node {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Node{cfg: cfg, log: log, copying: map[string]time.Time{}, backoff: map[string]time.Duration{}, serving: make(chan struct{})}
}

// Handler serves the replication routes (/v1/storage/replica/...):
// ops and resets while a replica, file copies while the primary, and
// status always.
func (n *Node) Handler() http.Handler {
	files := replica.FileHandler(n.cfg.Dir, func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.shipper == nil {
			return errors.New("replica: this server's storage is not the primary")
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("POST /v1/storage/replica/file", files)
	mux.HandleFunc("GET /v1/storage/replica/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.Status())
	})
	mux.HandleFunc("POST /v1/storage/replica/", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		rcv := n.receiver
		n.mu.Unlock()
		if rcv == nil {
			http.Error(w, "replica: this server's storage is not a replica now", http.StatusConflict)
			return
		}
		rcv.ServeHTTP(w, r)
	})
	return mux
}

// The roles a node reports: the primary serving, a replica taking the
// primary's changes, or neither yet.
const (
	RolePrimary  = "primary"
	RoleReplica  = "replica"
	RoleStarting = "starting"
)

// Status is what a node reports of itself.
type Status struct {
	Role     string          `json:"role"` // RolePrimary, RoleReplica or RoleStarting
	Epoch    uint64          `json:"epoch,omitempty"`
	Replicas map[string]bool `json:"replicas,omitempty"` // a primary's: name -> in sync
}

// Status says what this node is now.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.shipper != nil:
		return Status{Role: RolePrimary, Epoch: n.epoch, Replicas: n.shipper.Replicas()}
	case n.receiver != nil:
		return Status{Role: RoleReplica}
	}
	return Status{Role: RoleStarting}
}

// Serving is closed once this server's storage ports answer requests,
// from its own services or by forwarding them.
func (n *Node) Serving() <-chan struct{} { return n.serving }

// Run registers this server's storage and follows the placement until
// ctx ends; then it closes what it opened.
func (n *Node) Run(ctx context.Context) {
	defer n.stop()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := n.cfg.Placement.RegisterStorageMember(ctx, n.cfg.Self)
		if err == nil {
			break
		}
		n.log.Debug("storage: registering with the cluster", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	var index uint64
	for ctx.Err() == nil {
		n.step(ctx)
		// Placement changes wake the loop; the lease and a dead shipper
		// are checked every so often.
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if i, err := n.cfg.State.Wait(wctx, index); err == nil {
			index = i
		}
		cancel()
	}
}

// step brings the node to what the placement says.
func (n *Node) step(ctx context.Context) {
	cfg, _, ok := placement.Current(n.cfg.State)
	self := n.cfg.Self.Name
	if !slices.Contains(placement.Members(n.cfg.State), n.cfg.Self) {
		// Gone from the state, or another record there (a snapshot of
		// another cluster restored): register again.
		if err := n.cfg.Placement.RegisterStorageMember(ctx, n.cfg.Self); err != nil {
			n.log.Debug("storage: registering with the cluster", "err", err)
		}
	}
	switch {
	case !ok:
		return // the leader has not placed the storage yet
	case cfg.Primary != self:
		n.becomeReplica()
	default:
		n.mu.Lock()
		serving := n.shipper != nil && n.epoch == cfg.Epoch
		dead := serving && isClosed(n.shipper.Dead())
		n.mu.Unlock()
		inContact := n.cfg.InContact(Lease)
		if serving && !dead && inContact {
			n.catchUps(ctx, cfg)
			return
		}
		if serving {
			n.log.Warn("storage: the primary stops serving", "epoch", cfg.Epoch, "shipper failed", dead, "in contact with the leader", inContact)
		}
		n.stopPrimary()
		if !inContact {
			return
		}
		// A primary starts alone in its in-sync set, under an epoch of
		// its own: replicas that were in sync with a primary that stopped
		// may each lack different writes it never acknowledged.
		if !slices.Equal(cfg.InSync, []string{self}) || dead {
			if err := n.cfg.Placement.RestartInSync(ctx, cfg.Epoch, self); err != nil {
				n.log.Warn("storage: starting a new epoch as primary", "err", err)
			}
			return
		}
		if err := n.startPrimary(cfg.Epoch); err != nil {
			n.log.Error("storage: opening the primary's services", "err", err)
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (n *Node) startPrimary(epoch uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.receiver != nil {
		if err := n.receiver.Close(); err != nil {
			return err
		}
		n.receiver = nil
	}
	sh := replica.NewShipper(replica.ShipperConfig{
		Dir:    n.cfg.Dir,
		Source: replica.Source{Name: n.cfg.Self.Name, Epoch: epoch, API: n.cfg.Self.API},
		Client: n.cfg.Peers,
		Drop: func(ctx context.Context, name string) error {
			return n.cfg.Placement.DropInSync(ctx, epoch, name)
		},
		Logger: n.log,
	})
	if err := n.cfg.Storage.Open(sh.For); err != nil {
		sh.Close()
		return err
	}
	n.shipper, n.epoch = sh, epoch
	n.log.Info("storage: this server is the primary", "epoch", epoch)
	n.markServing()
	return nil
}

func (n *Node) markServing() {
	if !isClosed(n.serving) {
		close(n.serving)
	}
}

// stopPrimary closes the services, which finish the writes they took,
// then the shipper.
func (n *Node) stopPrimary() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shipper == nil {
		return
	}
	if err := n.cfg.Storage.CloseServices(); err != nil {
		n.log.Warn("storage: closing the services", "err", err)
	}
	n.shipper.Close()
	n.shipper, n.epoch = nil, 0
	clear(n.copying)
}

func (n *Node) becomeReplica() {
	n.stopPrimary()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.receiver != nil {
		return
	}
	if err := n.cfg.Storage.Forward(n.primaryURL); err != nil {
		n.log.Warn("storage: closing the services", "err", err)
	}
	rcv, err := replica.OpenReceiver(replica.ReceiverConfig{
		Dir: n.cfg.Dir, Client: n.cfg.Peers, Accept: n.accept, Logger: n.log,
	})
	if err != nil {
		n.log.Error("storage: opening the replica", "err", err)
		return
	}
	n.receiver = rcv
	n.log.Info("storage: this server is a replica")
	n.markServing()
}

// primaryURL is the base URL of svc at the primary, "" when unknown.
func (n *Node) primaryURL(svc storage.Service) string {
	cfg, _, ok := placement.Current(n.cfg.State)
	if !ok || cfg.Primary == n.cfg.Self.Name {
		return ""
	}
	for _, m := range placement.Members(n.cfg.State) {
		if m.Name == cfg.Primary {
			switch svc {
			case storage.Blob:
				return m.Blob
			case storage.Queue:
				return m.Queue
			case storage.Table:
				return m.Table
			}
		}
	}
	return ""
}

// accept takes ops only from the primary of the newest epoch known here
// (a newer one is the leader's decision this server has not applied yet).
func (n *Node) accept(src replica.Source) error {
	cfg, _, ok := placement.Current(n.cfg.State)
	if !ok {
		return errors.New("replica: no storage placement known here yet")
	}
	if src.Epoch < cfg.Epoch || (src.Epoch == cfg.Epoch && src.Name != cfg.Primary) {
		return fmt.Errorf("replica: %s is not the primary of epoch %d (%s of epoch %d is)", src.Name, src.Epoch, cfg.Primary, cfg.Epoch)
	}
	return nil
}

// catchUps starts copying to each registered server that is not a
// replica yet, backing off from those that fail.
func (n *Node) catchUps(ctx context.Context, cfg placement.Config) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sh, epoch := n.shipper, n.epoch
	have := sh.Replicas()
	for _, m := range placement.Members(n.cfg.State) {
		if m.Name == n.cfg.Self.Name {
			continue
		}
		if _, ok := have[m.Name]; ok {
			continue
		}
		if next, ok := n.copying[m.Name]; ok && time.Now().Before(next) {
			continue // copying, or waiting to try again
		}
		n.copying[m.Name] = time.Now().Add(24 * time.Hour)
		dbs := n.cfg.Storage.Databases()
		go func() {
			err := sh.CatchUp(ctx, m.Name, m.API, dbs, func(ctx context.Context) error {
				return n.cfg.Placement.AddInSync(ctx, epoch, m.Name)
			})
			n.mu.Lock()
			defer n.mu.Unlock()
			if err == nil {
				delete(n.copying, m.Name)
				delete(n.backoff, m.Name)
				return
			}
			wait := min(max(2*n.backoff[m.Name], time.Second), 30*time.Second)
			n.backoff[m.Name] = wait
			n.copying[m.Name] = time.Now().Add(wait)
			n.log.Debug("storage: copying to a replica failed; trying again later", "replica", m.Name, "in", wait, "err", err)
		}()
	}
}

func (n *Node) stop() {
	n.stopPrimary()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.receiver != nil {
		n.receiver.Close()
		n.receiver = nil
	}
}
