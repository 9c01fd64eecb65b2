package raftstore

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/weftcloud/weft/internal/state"
)

// ErrNotLeader is returned by the calls only the leader serves (Apply,
// Consistent, Restore, Join, RemovePeer) on any other server. Nothing was
// proposed: the caller may send the same request to the leader. The leader
// fields are empty when no leader is known (an election is under way);
// the caller should then retry after a short pause.
type ErrNotLeader struct {
	Leader    string // the leader's Raft address
	LeaderID  string // the leader's server ID
	LeaderAPI string // the leader's API address, when it announced one (Config.API)
}

func (e ErrNotLeader) Error() string {
	if e.LeaderID == "" && e.Leader == "" {
		return "raftstore: not the leader, and no leader is known"
	}
	return fmt.Sprintf("raftstore: not the leader (leader %s at %s)", e.LeaderID, e.Leader)
}

// Is makes ErrNotLeader a state.ErrUnavailable: the request may be made
// again, at the leader or after the election.
func (ErrNotLeader) Is(target error) bool { return target == state.ErrUnavailable }

// ErrUnknownOutcome is returned by Apply when the batch reached the log
// but leadership was lost, or the server shut down, before it was known to
// be committed: it may or may not be applied. Batches with revision checks
// can be retried safely; the retry reports ErrConflict if the first went in.
// It is a state.ErrUnavailable and a state.ErrUnknownOutcome.
var ErrUnknownOutcome error = unknownOutcome{}

type unknownOutcome struct{}

func (unknownOutcome) Error() string {
	return "raftstore: outcome unknown: leadership lost before commit"
}

func (unknownOutcome) Is(target error) bool {
	return target == state.ErrUnavailable || target == state.ErrUnknownOutcome
}

// ErrFailed is returned once the FSM could not write to its database. The
// server stops applying (it would otherwise drift from the others) and must
// be restarted; on restart it applies the log again from where it stopped.
var ErrFailed = errors.New("raftstore: state machine failed")

// applyError turns an error of a raft future for a proposal into the
// store's vocabulary. Errors raft returns before the entry is in the log
// become ErrNotLeader; the ones after, ErrUnknownOutcome.
func (s *Store) applyError(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return s.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("raftstore: %s: %w: %w", op, ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		if s.closing.Load() {
			// The batch may have entered the log before the shutdown.
			return fmt.Errorf("raftstore: %s: %w: %w", op, state.ErrClosed, ErrUnknownOutcome)
		}
		if ferr := s.fsm.failure(); ferr != nil {
			return fmt.Errorf("raftstore: %s: %w", op, ferr)
		}
		return fmt.Errorf("raftstore: %s: %w: %w", op, ErrUnknownOutcome, err)
	}
	return fmt.Errorf("raftstore: %s: %w", op, err)
}

// notLeader builds ErrNotLeader from what this server knows of the leader.
func (s *Store) notLeader() error {
	l := s.Leader()
	return ErrNotLeader{Leader: l.Addr, LeaderID: l.ID, LeaderAPI: l.API}
}
