package daemon

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
)

// weft dev is up once each of its nodes has registered in this run: the
// state of an earlier run still lists its nodes as ready.
func TestDevWaitsForItsOwnNodes(t *testing.T) {
	since := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	before, after := since.Add(-time.Minute), since.Add(time.Millisecond)
	node := func(name, state string, registered time.Time) api.Node {
		return api.Node{Name: name, State: state, RegisteredAt: registered}
	}
	names := []string{"node-1", "node-2"}
	for _, tc := range []struct {
		name  string
		nodes []api.Node
		want  []string
	}{
		{"none yet", nil, []string{"node-1 (not registered)", "node-2 (not registered)"}},
		{"one of an earlier run", []api.Node{node("node-1", api.NodeReady, before), node("node-2", api.NodeReady, after)}, []string{"node-1 (not registered)"}},
		{"one down", []api.Node{node("node-1", api.NodeDown, after), node("node-2", api.NodeReady, after)}, []string{"node-1 (down)"}},
		{"all registered", []api.Node{node("node-1", api.NodeReady, after), node("node-2", api.NodeDraining, since), node("node-3", api.NodeDown, before)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nodesWaiting(tc.nodes, names, since)); diff != "" {
				t.Errorf("nodes waited for (-want +got):\n%s", diff)
			}
		})
	}
}
