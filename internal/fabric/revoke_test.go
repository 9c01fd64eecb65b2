package fabric

import (
	"errors"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestRevokeNode: certificates issued before the revocation are refused,
// later ones (a rejoin) are not, and registering again keeps the record.
func TestRevokeNode(t *testing.T) {
	s := newSim(t, 2)
	before := s.clock.Now()
	s.clock.Advance(time.Second)
	n, err := s.c.RevokeNode(s.ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if !n.RevokedBefore.Equal(s.clock.Now()) {
		t.Errorf("revoked before %v, want %v", n.RevokedBefore, s.clock.Now())
	}
	s.addNode("node-1", "fd1", 4) // an agent that registers again does not undo it
	s.clock.Advance(time.Second)
	for _, tc := range []struct {
		node   string
		issued time.Time
		want   bool
	}{
		{"node-1", before, true},
		{"node-1", s.clock.Now(), false}, // a certificate from rejoining
		{"node-2", before, false},
		{"node-9", before, false}, // unknown nodes are refused elsewhere
	} {
		if got := s.c.Revoked(tc.node, tc.issued); got != tc.want {
			t.Errorf("Revoked(%s, %v) = %v, want %v", tc.node, tc.issued, got, tc.want)
		}
	}
	if _, err := s.c.RevokeNode(s.ctx, "node-9"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("revoking an unknown node: %v, want not found", err)
	}
}
