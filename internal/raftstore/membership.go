package raftstore

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server of the cluster's configuration.
type Member struct {
	ID     string
	Addr   string // Raft address
	Leader bool
	Voter  bool
}

// Members returns the cluster's latest configuration as this server knows it.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raftstore: members: %w", err)
	}
	_, leader := s.raft.LeaderWithID()
	var out []Member
	for _, srv := range f.Configuration().Servers {
		out = append(out, Member{
			ID:     string(srv.ID),
			Addr:   string(srv.Address),
			Leader: srv.ID == leader,
			Voter:  srv.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// Join adds the server id, listening for Raft at addr, as a voter. It runs
// on the leader (elsewhere ErrNotLeader) and returns once the new
// configuration is committed, which needs the new server to be up: a
// quorum now counts it. Joining a member again with the same address is a
// no-op; with a new address, the old entry is replaced.
func (s *Store) Join(ctx context.Context, id, addr string) error {
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raftstore: join %s: %w", id, err)
	}
	for _, srv := range cf.Configuration().Servers {
		switch {
		case srv.ID == raft.ServerID(id) && srv.Address == raft.ServerAddress(addr):
			return nil
		case srv.ID == raft.ServerID(id) || srv.Address == raft.ServerAddress(addr):
			f := s.raft.RemoveServer(srv.ID, 0, s.timeout(ctx))
			if err := waitFuture(ctx, f); err != nil {
				return s.applyError("join "+id+": remove stale "+string(srv.ID), err)
			}
		}
	}
	f := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.timeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return s.applyError("join "+id, err)
	}
	s.log.Info("raftstore: member joined", "member", id, "addr", addr)
	return nil
}

// RemovePeer removes the server id from the cluster. It runs on the leader
// (elsewhere ErrNotLeader); a leader removing itself steps down afterwards.
// Removing an unknown id is a no-op.
func (s *Store) RemovePeer(ctx context.Context, id string) error {
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	f := s.raft.RemoveServer(raft.ServerID(id), 0, s.timeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return s.applyError("remove "+id, err)
	}
	s.log.Info("raftstore: member removed", "member", id)
	return nil
}

// timeout is how long to wait for Raft to take a request: until ctx's
// deadline, or ApplyTimeout.
func (s *Store) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return s.cfg.ApplyTimeout
}
