// Package placement decides which node runs a new instance. It is pure: the
// caller describes the nodes and the instances already placed, asks for one
// decision at a time, and gets a node name or the reason there is none. No
// I/O, no clock, no randomness: the same inputs always give the same
// decisions, so the scheduler can be replayed and tested exactly.
//
// Policy, among the feasible nodes (schedulable, offering the runtime, with
// enough free CPU and memory, not avoided): the fault domain holding the
// fewest instances of the group, then the node holding the fewest, then the
// node with the most free capacity, then the smallest name.
//
// A Cluster is not safe for concurrent use; the scheduler builds one per
// planning pass.
package placement

import (
	"slices"
	"sort"
)

// Node is a placement candidate as the scheduler sees it now.
type Node struct {
	Name        string
	FaultDomain string
	FreeCPU     float64 // cores, net of what already runs there
	FreeMemory  int64   // bytes, net of what already runs there
	Runtimes    []string
	Schedulable bool // ready and not draining
}

// Request asks for one instance of Group (e.g. "service/role").
type Request struct {
	Group   string
	Runtime string
	CPU     float64
	Memory  int64
	Avoid   []string // nodes not to use, e.g. the one being drained
}

// UnplaceableError says why a request fits nowhere; Reason is meant for the
// instance's pending status, e.g. `no ready node offers runtime "vm"`, and
// Kind is the class of that reason, one of the Why constants, for counts
// (metrics) that must not grow with every node name or size.
type UnplaceableError struct {
	Kind   string
	Reason string
}

// The kinds of UnplaceableError.
const (
	WhyNoNodes     = "no_nodes"      // the cluster has no node
	WhyNoReadyNode = "no_ready_node" // every node is down or draining
	WhyNoRuntime   = "no_runtime"    // no ready node offers the runtime (other than those avoided)
	WhyNoCapacity  = "no_capacity"   // no candidate has the CPU and memory free
)

func (e *UnplaceableError) Error() string { return "placement: " + e.Reason }

// cpuEpsilon absorbs float rounding: ten reservations of 0.1 CPU must fit
// on a node with 1 CPU free.
const cpuEpsilon = 1e-9

// Cluster is the placement view. Place reserves capacity on the node it
// picks and counts the instance, so successive decisions see each other.
type Cluster struct {
	nodes   map[string]*node
	all     []*node   // every node by name, for reasons
	domains []*domain // by name; only those with a schedulable node
	groups  map[string]*spread

	// Free capacity is compared as a sum of fractions of the largest node
	// seen, so neither cores nor bytes dominate the other.
	cpuScale, memScale float64
}

type node struct {
	Node
	domain *domain
	score  float64 // free capacity, see Cluster.score
}

// domain keeps, per runtime, its schedulable nodes ordered by free
// capacity (most first), so a decision walks only the head of one list
// per fault domain instead of every node.
type domain struct {
	name  string
	lists map[string][]*node
	size  int // schedulable nodes
}

// spread counts one group's instances per node and per fault domain.
type spread struct {
	perNode   map[*node]int
	perDomain map[*domain]int
	levels    map[*domain]*levels
}

// levels tracks, for one group in one domain, how many schedulable nodes
// hold each number of instances, so the fewest any node holds is known
// without a scan. A walk that reaches a node with that few can stop: no
// node further down the list can hold fewer. Without it, a group with an
// instance on every node would make every decision walk every node.
type levels struct {
	nodes map[int]int // instances held -> nodes holding that many (0 omitted)
	used  int         // nodes holding at least one
	least int
}

// NewCluster builds the view from nodes. Names must be unique; a repeated
// name is ignored after its first occurrence.
func NewCluster(nodes []Node) *Cluster {
	c := &Cluster{
		nodes:  make(map[string]*node, len(nodes)),
		groups: make(map[string]*spread),
	}
	domains := make(map[string]*domain)
	for _, n := range nodes {
		if _, dup := c.nodes[n.Name]; dup {
			continue
		}
		n.Runtimes = slices.Clone(n.Runtimes)
		slices.Sort(n.Runtimes)
		n.Runtimes = slices.Compact(n.Runtimes)
		d, ok := domains[n.FaultDomain]
		if !ok {
			d = &domain{name: n.FaultDomain, lists: make(map[string][]*node)}
			domains[n.FaultDomain] = d
		}
		nd := &node{Node: n, domain: d}
		c.nodes[n.Name] = nd
		c.all = append(c.all, nd)
		c.cpuScale = max(c.cpuScale, n.FreeCPU)
		c.memScale = max(c.memScale, float64(n.FreeMemory))
	}
	if c.cpuScale <= 0 {
		c.cpuScale = 1
	}
	if c.memScale <= 0 {
		c.memScale = 1
	}
	sort.Slice(c.all, func(i, j int) bool { return c.all[i].Name < c.all[j].Name })
	for _, n := range c.all {
		n.score = c.score(n)
		if !n.Schedulable {
			continue
		}
		n.domain.size++
		for _, rt := range n.Runtimes {
			n.domain.lists[rt] = append(n.domain.lists[rt], n)
		}
	}
	for _, d := range domains {
		if len(d.lists) == 0 {
			continue
		}
		for _, l := range d.lists {
			sort.Slice(l, func(i, j int) bool { return ahead(l[i], l[j]) })
		}
		c.domains = append(c.domains, d)
	}
	sort.Slice(c.domains, func(i, j int) bool { return c.domains[i].name < c.domains[j].name })
	return c
}

func (c *Cluster) score(n *node) float64 {
	return n.FreeCPU/c.cpuScale + float64(n.FreeMemory)/c.memScale
}

// Count records an existing instance of group on node, for spreading; the
// node's free capacity is taken to be already net of it. Unknown nodes are
// ignored: their instances cannot influence a choice among known ones.
func (c *Cluster) Count(group, nodeName string) {
	if n, ok := c.nodes[nodeName]; ok {
		c.adjustCount(group, n, +1)
	}
}

// Uncount forgets one instance of group on node, e.g. one the scheduler
// is about to stop; it undoes Count.
func (c *Cluster) Uncount(group, nodeName string) {
	if n, ok := c.nodes[nodeName]; ok {
		c.adjustCount(group, n, -1)
	}
}

// Place picks a node for r, reserves r's CPU and memory there and counts
// the instance in r.Group. It returns an *UnplaceableError when no node
// is feasible.
func (c *Cluster) Place(r Request) (string, error) {
	best := c.choose(r)
	if best == nil {
		kind, reason := c.reason(r)
		return "", &UnplaceableError{Kind: kind, Reason: reason}
	}
	c.reserve(best, -r.CPU, -r.Memory)
	c.adjustCount(r.Group, best, +1)
	return best.Name, nil
}

// Release gives cpu and mem back to node, e.g. for an instance that
// stopped or a reservation the scheduler dropped; pair it with Uncount
// when the instance no longer counts for spreading. Unknown nodes are
// ignored.
func (c *Cluster) Release(nodeName string, cpu float64, mem int64) {
	if n, ok := c.nodes[nodeName]; ok {
		c.reserve(n, cpu, mem)
	}
}

// choose returns the best feasible node for r, or nil.
func (c *Cluster) choose(r Request) *node {
	g := c.groups[r.Group] // nil: the group has no instances yet
	var best *node
	bestFD, bestN := 0, 0
	for _, d := range c.domains {
		list := d.lists[r.Runtime]
		if len(list) == 0 {
			continue
		}
		fd := g.inDomain(d)
		if best != nil && fd > bestFD {
			continue
		}
		least := g.least(d)
		for _, n := range list {
			// The list runs from most to least free: once best is as
			// spread as this domain allows and ahead of n, no later node
			// can win.
			if best != nil && fd == bestFD && bestN <= least && ahead(best, n) {
				break
			}
			if !fits(n, r) {
				continue
			}
			nc := g.onNode(n)
			if best == nil || fd < bestFD || (fd == bestFD && (nc < bestN || (nc == bestN && ahead(n, best)))) {
				best, bestFD, bestN = n, fd, nc
			}
			if nc <= least {
				break // later nodes have less room and cannot hold fewer
			}
		}
	}
	return best
}

func fits(n *node, r Request) bool {
	if n.FreeCPU+cpuEpsilon < r.CPU || n.FreeMemory < r.Memory {
		return false
	}
	return !slices.Contains(r.Avoid, n.Name)
}

// ahead orders nodes by most free capacity, then by name.
func ahead(a, b *node) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.Name < b.Name
}

func (g *spread) inDomain(d *domain) int {
	if g == nil {
		return 0
	}
	return g.perDomain[d]
}

func (g *spread) onNode(n *node) int {
	if g == nil {
		return 0
	}
	return g.perNode[n]
}

// least is the fewest instances of the group any schedulable node of d
// holds.
func (g *spread) least(d *domain) int {
	if g == nil {
		return 0
	}
	if l, ok := g.levels[d]; ok {
		return l.least
	}
	return 0
}

// adjustCount adds delta (+1 or -1) instances of group on n; a count never
// goes below zero.
func (c *Cluster) adjustCount(group string, n *node, delta int) {
	g, ok := c.groups[group]
	if !ok {
		if delta < 0 {
			return
		}
		g = &spread{
			perNode:   make(map[*node]int),
			perDomain: make(map[*domain]int),
			levels:    make(map[*domain]*levels),
		}
		c.groups[group] = g
	}
	old := g.perNode[n]
	if old+delta < 0 {
		return
	}
	g.perNode[n] = old + delta
	g.perDomain[n.domain] += delta
	if g.perNode[n] == 0 {
		delete(g.perNode, n)
	}
	if g.perDomain[n.domain] == 0 {
		delete(g.perDomain, n.domain)
	}
	if n.Schedulable {
		l, ok := g.levels[n.domain]
		if !ok {
			l = &levels{nodes: make(map[int]int)}
			g.levels[n.domain] = l
		}
		l.move(old, old+delta, n.domain.size)
	}
}

// move records one node going from holding from to holding to instances,
// in a domain of size schedulable nodes.
func (l *levels) move(from, to, size int) {
	if from > 0 {
		l.nodes[from]--
		if l.nodes[from] == 0 {
			delete(l.nodes, from)
		}
	} else {
		l.used++
	}
	if to > 0 {
		l.nodes[to]++
	} else {
		l.used--
	}
	switch {
	case l.used < size:
		l.least = 0
	case to < l.least:
		l.least = to
	default:
		// Every node holds some; only the node that left the lowest level
		// can raise it, and then by one.
		for l.nodes[l.least] == 0 {
			l.least++
		}
	}
}

// reserve changes n's free capacity by cpu and mem and moves it to its new
// place in every list it is in. A move is a shift over the nodes it passes,
// usually few, since one instance changes a node's capacity a little.
func (c *Cluster) reserve(n *node, cpu float64, mem int64) {
	if !n.Schedulable {
		n.FreeCPU += cpu
		n.FreeMemory += mem
		n.score = c.score(n)
		return
	}
	// Find n by its old key before changing it.
	var buf [4]int
	pos := buf[:0]
	for _, rt := range n.Runtimes {
		l := n.domain.lists[rt]
		pos = append(pos, sort.Search(len(l), func(j int) bool { return !ahead(l[j], n) }))
	}
	n.FreeCPU += cpu
	n.FreeMemory += mem
	n.score = c.score(n)
	for i, rt := range n.Runtimes {
		l := n.domain.lists[rt]
		p := pos[i]
		for p+1 < len(l) && ahead(l[p+1], n) {
			l[p] = l[p+1]
			p++
		}
		for p > 0 && ahead(n, l[p-1]) {
			l[p] = l[p-1]
			p--
		}
		l[p] = n
	}
}
