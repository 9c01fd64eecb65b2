package placement

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

func ready(name, fd string, cpu float64, mem int64, runtimes ...string) Node {
	if len(runtimes) == 0 {
		runtimes = []string{"process"}
	}
	return Node{Name: name, FaultDomain: fd, FreeCPU: cpu, FreeMemory: mem, Runtimes: runtimes, Schedulable: true}
}

func req(group string, cpu float64, mem int64) Request {
	return Request{Group: group, Runtime: "process", CPU: cpu, Memory: mem}
}

// placeAll places reqs in order and returns the chosen nodes, "!" plus the
// reason for requests that could not be placed.
func placeAll(c *Cluster, reqs []Request) []string {
	var out []string
	for _, r := range reqs {
		n, err := c.Place(r)
		var ue *UnplaceableError
		switch {
		case errors.As(err, &ue):
			out = append(out, "!"+ue.Reason)
		case err != nil:
			out = append(out, "?"+err.Error())
		default:
			out = append(out, n)
		}
	}
	return out
}

func repeat(r Request, n int) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestPlace(t *testing.T) {
	threeFDs := []Node{
		ready("a1", "fd1", 4, 4*gi), ready("a2", "fd1", 4, 4*gi),
		ready("b1", "fd2", 4, 4*gi), ready("b2", "fd2", 4, 4*gi),
		ready("c1", "fd3", 4, 4*gi), ready("c2", "fd3", 4, 4*gi),
	}
	tests := []struct {
		name   string
		nodes  []Node
		counts [][2]string // existing group/node instances
		reqs   []Request
		want   []string
	}{
		{
			name:  "spreads over fault domains then nodes",
			nodes: threeFDs,
			reqs:  repeat(req("s/web", 0.5, 128*mi), 6),
			want:  []string{"a1", "b1", "c1", "a2", "b2", "c2"},
		},
		{
			name:  "existing instances count for spreading",
			nodes: threeFDs,
			counts: [][2]string{
				{"s/web", "a1"}, {"s/web", "b1"},
				{"other", "c1"}, {"other", "c2"}, // another group does not matter
			},
			reqs: repeat(req("s/web", 0.5, 128*mi), 2),
			want: []string{"c1", "a2"},
		},
		{
			name:  "most free capacity wins among equally spread nodes",
			nodes: []Node{ready("small", "fd1", 1, gi), ready("big", "fd1", 8, 8*gi), ready("mid", "fd1", 2, 2*gi)},
			reqs:  repeat(req("g", 0.5, 128*mi), 3),
			want:  []string{"big", "mid", "small"},
		},
		{
			name:  "capacity respected, then fewer instances beats more room",
			nodes: []Node{ready("n1", "fd1", 1, gi), ready("n2", "fd2", 1, gi)},
			reqs:  repeat(req("g", 0.4, 256*mi), 5),
			want: []string{"n1", "n2", "n1", "n2",
				"!no node has 0.4 CPU and 256Mi free (most free: n1 with 0.2 CPU, 512Mi)"},
		},
		{
			name:  "memory is capacity too",
			nodes: []Node{ready("n1", "fd1", 16, 1*gi)},
			reqs:  repeat(req("g", 0.1, 400*mi), 3),
			want:  []string{"n1", "n1", "!no node has 0.1 CPU and 400Mi free (most free: n1 with 15.8 CPU, 224Mi)"},
		},
		{
			name:  "tenths of a CPU add up exactly",
			nodes: []Node{ready("n1", "fd1", 1, gi)},
			reqs:  repeat(req("g", 0.1, 0), 10),
			want:  []string{"n1", "n1", "n1", "n1", "n1", "n1", "n1", "n1", "n1", "n1"},
		},
		{
			name:  "runtime filter",
			nodes: []Node{ready("p", "fd1", 8, 8*gi, "process"), ready("v", "fd2", 1, gi, "vm", "process")},
			reqs: []Request{
				{Group: "g", Runtime: "vm", CPU: 0.5, Memory: 256 * mi},
				{Group: "g", Runtime: "vm", CPU: 0.5, Memory: 256 * mi},
				{Group: "g", Runtime: "container", CPU: 0.5},
			},
			want: []string{"v", "v", `!no ready node offers runtime "container"`},
		},
		{
			name: "unschedulable nodes are skipped",
			nodes: []Node{
				{Name: "draining", FaultDomain: "fd1", FreeCPU: 64, FreeMemory: 64 * gi, Runtimes: []string{"process"}},
				ready("n2", "fd2", 1, gi),
			},
			reqs: repeat(req("g", 0.5, 0), 2),
			want: []string{"n2", "n2"},
		},
		{
			name:  "avoid list",
			nodes: threeFDs,
			reqs: []Request{
				{Group: "g", Runtime: "process", CPU: 1, Avoid: []string{"a1", "b1"}},
				{Group: "g", Runtime: "process", CPU: 1, Avoid: []string{"a1", "b1", "c1"}},
			},
			want: []string{"a2", "b2"},
		},
		{
			name:  "avoiding every node",
			nodes: []Node{ready("n1", "fd1", 1, gi), ready("n2", "fd1", 1, gi)},
			reqs:  []Request{{Group: "g", Runtime: "process", Avoid: []string{"n2", "n1"}}},
			want:  []string{`!no ready node offers runtime "process" other than n1, n2`},
		},
		{
			name:  "no schedulable node",
			nodes: []Node{{Name: "down", FaultDomain: "fd1", FreeCPU: 4, Runtimes: []string{"process"}}},
			reqs:  []Request{req("g", 0, 0)},
			want:  []string{"!no ready node (all are down or draining)"},
		},
		{
			name: "no nodes",
			reqs: []Request{req("g", 0, 0)},
			want: []string{"!no nodes"},
		},
		{
			name:  "reason names the node with the most room, in binary units",
			nodes: []Node{ready("node-1", "fd1", 1, 256*mi), ready("node-2", "fd2", 1.5, 512*mi)},
			reqs:  []Request{req("g", 4, 2*gi)},
			want:  []string{"!no node has 4 CPU and 2Gi free (most free: node-2 with 1.5 CPU, 512Mi)"},
		},
		{
			name: "a full fault domain does not stop spreading over the others",
			nodes: []Node{
				ready("a1", "fd1", 0.5, gi),
				ready("b1", "fd2", 4, 4*gi),
				ready("c1", "fd3", 4, 4*gi),
			},
			reqs: repeat(req("g", 1, 0), 4),
			want: []string{"b1", "c1", "b1", "c1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCluster(tt.nodes)
			for _, gn := range tt.counts {
				c.Count(gn[0], gn[1])
			}
			if diff := cmp.Diff(tt.want, placeAll(c, tt.reqs)); diff != "" {
				t.Errorf("placements (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReleaseAndUncount(t *testing.T) {
	c := NewCluster([]Node{ready("n1", "fd1", 1, gi), ready("n2", "fd2", 1, gi)})
	if got := placeAll(c, repeat(req("g", 1, 0), 3)); !cmp.Equal(got[:2], []string{"n1", "n2"}) || !strings.HasPrefix(got[2], "!") {
		t.Fatalf("filling up: %v", got)
	}
	// n2's instance stops: its room comes back and it no longer counts, so
	// the next instance goes there even though n1 sorts first.
	c.Release("n2", 1, 0)
	c.Uncount("g", "n2")
	if got := placeAll(c, []Request{req("g", 0.5, 0)}); !cmp.Equal(got, []string{"n2"}) {
		t.Fatalf("after release: %v, want [n2]", got)
	}
	// Unknown nodes and groups are ignored.
	c.Release("nope", 1, 1)
	c.Count("g", "nope")
	c.Uncount("never", "n1")
}

func TestUnplaceableError(t *testing.T) {
	_, err := NewCluster(nil).Place(req("g", 1, 0))
	var ue *UnplaceableError
	if !errors.As(err, &ue) || ue.Reason != "no nodes" || err.Error() != "placement: no nodes" {
		t.Fatalf("err = %v", err)
	}
}

// TestDeterministic places the same large workload twice, with the nodes
// given in different orders, and expects identical decisions.
func TestDeterministic(t *testing.T) {
	nodes := benchNodes(60, 6)
	reversed := make([]Node, len(nodes))
	for i, n := range nodes {
		reversed[len(nodes)-1-i] = n
	}
	reqs := benchRequests(20, 30)
	a := placeAll(NewCluster(nodes), reqs)
	b := placeAll(NewCluster(reversed), reqs)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("decisions differ (-first +second):\n%s", diff)
	}
}

// TestSpreadInvariant checks the policy on a large run: within each group
// the fault domains never differ by more than one instance while every
// domain has room.
func TestSpreadInvariant(t *testing.T) {
	const groups, per, fds = 50, 37, 10
	c := NewCluster(benchNodes(200, fds))
	perFD := make(map[string]map[string]int)
	fdOf := make(map[string]string)
	for _, n := range benchNodes(200, fds) {
		fdOf[n.Name] = n.FaultDomain
	}
	for _, r := range benchRequests(groups, per) {
		n, err := c.Place(r)
		if err != nil {
			t.Fatal(err)
		}
		if perFD[r.Group] == nil {
			perFD[r.Group] = make(map[string]int)
		}
		perFD[r.Group][fdOf[n]]++
	}
	for g, m := range perFD {
		lo, hi := per, 0
		for fd := range fds {
			k := m["fd"+strconv.Itoa(fd)]
			lo, hi = min(lo, k), max(hi, k)
		}
		if hi-lo > 1 {
			t.Errorf("group %s: fault domains hold %d to %d instances", g, lo, hi)
		}
	}
}

// TestImportsOnlyStandardLibrary keeps placement a leaf contract.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: placement may import only the standard library", f, path)
			}
		}
	}
}

func benchNodes(n, fds int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = ready(fmt.Sprintf("node-%04d", i), "fd"+strconv.Itoa(i%fds), 16, 64*gi, "process", "container")
	}
	return nodes
}

func benchRequests(groups, per int) []Request {
	reqs := make([]Request, 0, groups*per)
	for g := range groups {
		for range per {
			reqs = append(reqs, Request{
				Group:   fmt.Sprintf("svc%03d/web", g),
				Runtime: "process",
				CPU:     0.25 * float64(1+g%4),
				Memory:  int64(1+g%8) * 128 * mi,
			})
		}
	}
	return reqs
}
