package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// reference is the policy written as plainly as possible: scan every node
// and keep the best by (fault domain count, node count, free capacity,
// name). The fast path must agree with it on every decision.
type reference struct {
	nodes    []Node
	perNode  map[string]map[string]int // group -> node -> instances
	cpuScale float64
	memScale float64
}

func newReference(nodes []Node) *reference {
	r := &reference{nodes: slices.Clone(nodes), perNode: make(map[string]map[string]int)}
	for _, n := range nodes {
		r.cpuScale = max(r.cpuScale, n.FreeCPU)
		r.memScale = max(r.memScale, float64(n.FreeMemory))
	}
	return r
}

func (r *reference) count(group, node string, delta int) {
	if r.perNode[group] == nil {
		r.perNode[group] = make(map[string]int)
	}
	if r.perNode[group][node]+delta >= 0 {
		r.perNode[group][node] += delta
	}
}

func (r *reference) place(q Request) string {
	fdCount := make(map[string]int)
	for i := range r.nodes {
		fdCount[r.nodes[i].FaultDomain] += r.perNode[q.Group][r.nodes[i].Name]
	}
	best := -1
	better := func(i, j int) bool {
		a, b := &r.nodes[i], &r.nodes[j]
		if fa, fb := fdCount[a.FaultDomain], fdCount[b.FaultDomain]; fa != fb {
			return fa < fb
		}
		if na, nb := r.perNode[q.Group][a.Name], r.perNode[q.Group][b.Name]; na != nb {
			return na < nb
		}
		sa := a.FreeCPU/r.cpuScale + float64(a.FreeMemory)/r.memScale
		sb := b.FreeCPU/r.cpuScale + float64(b.FreeMemory)/r.memScale
		if sa != sb {
			return sa > sb
		}
		return a.Name < b.Name
	}
	for i, n := range r.nodes {
		if !n.Schedulable || !slices.Contains(n.Runtimes, q.Runtime) || slices.Contains(q.Avoid, n.Name) ||
			n.FreeCPU+cpuEpsilon < q.CPU || n.FreeMemory < q.Memory {
			continue
		}
		if best < 0 || better(i, best) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	r.nodes[best].FreeCPU -= q.CPU
	r.nodes[best].FreeMemory -= q.Memory
	r.count(q.Group, r.nodes[best].Name, +1)
	return r.nodes[best].Name
}

func (r *reference) release(node string, cpu float64, mem int64) {
	for i := range r.nodes {
		if r.nodes[i].Name == node {
			r.nodes[i].FreeCPU += cpu
			r.nodes[i].FreeMemory += mem
		}
	}
}

// TestAgreesWithReference drives the Cluster and the reference with the
// same pseudo-random mix of placements, releases and recounts over uneven
// nodes, mixed runtimes and unschedulable nodes, until capacity runs out.
func TestAgreesWithReference(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			var nodes []Node
			for i := range 40 + rng.IntN(40) {
				rts := []string{"process"}
				if rng.IntN(3) == 0 {
					rts = append(rts, "vm")
				}
				nodes = append(nodes, Node{
					Name:        fmt.Sprintf("n%03d", i),
					FaultDomain: fmt.Sprintf("fd%d", rng.IntN(1+int(seed)%5)),
					FreeCPU:     float64(1+rng.IntN(16)) / 2,
					FreeMemory:  int64(1+rng.IntN(32)) * 256 * mi,
					Runtimes:    rts,
					Schedulable: rng.IntN(8) != 0,
				})
			}
			c, ref := NewCluster(nodes), newReference(nodes)
			type placed struct {
				group, node string
				cpu         float64
				mem         int64
			}
			var live []placed
			for step := range 4000 {
				group := fmt.Sprintf("g%d", rng.IntN(6))
				switch k := rng.IntN(10); {
				case k < 7:
					q := Request{Group: group, Runtime: "process", CPU: float64(rng.IntN(4)) / 4, Memory: int64(rng.IntN(4)) * 128 * mi}
					if rng.IntN(5) == 0 {
						q.Runtime = "vm"
					}
					if rng.IntN(4) == 0 {
						q.Avoid = []string{nodes[rng.IntN(len(nodes))].Name}
					}
					got, err := c.Place(q)
					want := ref.place(q)
					if (err != nil) != (want == "") || got != want {
						t.Fatalf("step %d: Place(%+v) = %q, %v; reference %q", step, q, got, err, want)
					}
					if err == nil {
						live = append(live, placed{q.Group, got, q.CPU, q.Memory})
					}
				case k < 9 && len(live) > 0:
					i := rng.IntN(len(live))
					p := live[i]
					live = slices.Delete(live, i, i+1)
					c.Release(p.node, p.cpu, p.mem)
					c.Uncount(p.group, p.node)
					ref.release(p.node, p.cpu, p.mem)
					ref.count(p.group, p.node, -1)
				default:
					n := nodes[rng.IntN(len(nodes))].Name
					c.Count(group, n)
					ref.count(group, n, +1)
				}
			}
		})
	}
}
