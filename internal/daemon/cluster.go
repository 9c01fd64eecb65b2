package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/cluster"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/raftstore"
	"github.com/weftcloud/weft/internal/storage/placement"
)

// formTimeout bounds how long a new server waits for the others to form or
// admit it.
const formTimeout = 10 * time.Minute

// openStore opens the replicated state: a one-member cluster for a single
// server (which adopts a state.db from before Raft), a new cluster formed
// with the servers at --join once --bootstrap-expect of them are up, or an
// existing cluster joined through --join. A server with Raft state resumes.
// It returns once the cluster has a leader, or with an error when ctx ends
// first.
func openStore(ctx context.Context, cfg ServerConfig, self api.ServerSelf, link cluster.Link, creds *pki.Credentials, log *slog.Logger) (*raftstore.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	_, err := os.Stat(filepath.Join(cfg.Data, "raft.db"))
	resuming := err == nil
	single := len(cfg.Join) == 0 && cfg.BootstrapExpect <= 1
	rc := raftstore.Config{
		NodeID: cfg.Name, BindAddr: self.Raft, API: self.API, DataDir: cfg.Data,
		Logger: log.With("part", "raft"),
		// The storage placement names this cluster's servers and the data
		// on their disks, which a backup does not hold.
		KeepOnRestore: []string{placement.Kind},
	}
	if creds != nil {
		rc.TLS = creds.RaftTLS()
	} else {
		rc.Local = true // checkPlain: a server alone
	}
	switch {
	case resuming:
	case single:
		rc.Bootstrap = true
	case cfg.BootstrapExpect > 1:
		if len(cfg.Join) == 0 {
			return nil, errors.New("server: --bootstrap-expect needs --join with the other servers' addresses")
		}
		if rc.Peers, err = cluster.DiscoverPeers(ctx, link, self, cfg.Join, cfg.BootstrapExpect, log); err != nil {
			return nil, err
		}
	}
	store, err := raftstore.Open(rc)
	if err != nil {
		return nil, fmt.Errorf("server: open state: %w", err)
	}
	if !resuming && !single && cfg.BootstrapExpect <= 1 {
		if err := cluster.RequestJoin(ctx, link, self, cfg.Join, log); err != nil {
			store.Close()
			return nil, err
		}
	}
	if err := cluster.WaitLeader(ctx, store); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// systemAccountKey returns the storage system account, made by the leader
// on its first start; a follower waits for it to arrive.
func systemAccountKey(ctx context.Context, accts *accounts.Store) (string, []byte, error) {
	for {
		name, key, err := accts.System(ctx)
		var nl raftstore.ErrNotLeader
		if !errors.As(err, &nl) {
			return name, key, err
		}
		select {
		case <-ctx.Done():
			return "", nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
