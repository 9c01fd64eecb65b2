package fabric

import (
	"encoding/json"
	"strings"
	"testing"
)

// A node's allocated CPU is a sum of floats: it is rounded to the
// thousandth (the "m" in 100m) so that JSON shows 0.3, not
// 0.30000000000000004.
func TestNodeAllocatedCPUIsRounded(t *testing.T) {
	s := newSim(t, 1)
	spec := webSpec(3, "1")
	spec.Roles[0].Size.CPU = 0.1
	s.deploy(spec)
	s.settle(20, "3 placed", func() bool { return len(s.records("hello")) == 3 })
	n, err := s.c.Node(s.ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(n.Allocated)
	if !strings.Contains(string(data), `"cpu":0.3,`) {
		t.Errorf("allocated %s, want cpu 0.3", data)
	}
}
