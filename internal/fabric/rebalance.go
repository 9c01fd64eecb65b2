package fabric

import (
	"fmt"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
)

// Placement only decides where new instances go. A role deployed while few
// nodes were up (weft dev deploying before its agents registered), or
// whose instances were replaced while a fault domain was away, stays on
// fewer fault domains than the nodes now allow unless something moves it.
// rebalance does, the way a node drain moves instances: a replacement
// starts in the emptier domain, and the original leaves the load balancer
// and stops only once the replacement is healthy (evict), so the role never
// has fewer healthy instances than before the move.

// rebalanceRetry is how long a role waits after a move was given up before
// it tries another: a node that takes instances but cannot run them must
// not be handed one in a loop.
const rebalanceRetry = 5 * time.Minute

// rebalance starts at most one move per role, and only in a role that is
// settled: every slot holds one healthy instance of the current template
// and nothing of the role is starting, stopping or moving, in a stable
// service (an upgrade replaces instances itself).
func (p *pass) rebalance() {
	for _, svc := range p.services {
		if svc.Status != api.ServiceStable {
			continue
		}
		insts := p.bySvc[svc.key()]
		for _, role := range svc.Spec.Roles {
			var ofRole []*instanceRecord
			for _, in := range insts {
				if in.Role == role.Name {
					ofRole = append(ofRole, in)
				}
			}
			p.rebalanceRole(svc, role, ofRole)
		}
	}
}

// rebalanceRole moves one instance out of the fault domain that holds the
// most of the role when placement finds room in a domain holding at least
// two fewer: with one fewer a move would only swap which domain holds more.
// So moves stop once the role is as spread as placement would have made it
// from the start.
func (p *pass) rebalanceRole(svc *serviceRecord, role api.RoleSpec, insts []*instanceRecord) {
	// A persistent instance moves only by live migration, which an
	// operator asks for, and one with drives cannot have its replacement
	// start beside it (the drives are mounted on one node at a time).
	if role.RunsOnce() || role.Instances < 2 || len(insts) != role.Instances {
		return
	}
	hash := templateHash(role)
	perFD := map[string][]*instanceRecord{}
	for _, in := range insts {
		settled := in.live() && in.healthy() && in.Template == hash && in.Migration == nil && in.Node != ""
		if !settled {
			return
		}
		if p.now.Sub(in.MoveFailed) < rebalanceRetry {
			p.wakeAt(in.MoveFailed.Add(rebalanceRetry))
			return
		}
		perFD[in.FaultDomain] = append(perFD[in.FaultDomain], in)
	}
	from := ""
	for fd, list := range perFD {
		if len(list) > len(perFD[from]) || (len(list) == len(perFD[from]) && fd < from) {
			from = fd
		}
	}
	if len(perFD[from]) < 2 || !p.roomierDomain(perFD, len(perFD[from])) {
		return
	}
	// The instance to move: the last one on the node of that domain
	// holding the most of the role.
	perNode := map[string]int{}
	for _, in := range perFD[from] {
		perNode[in.Node]++
	}
	var move *instanceRecord
	for _, in := range perFD[from] {
		if move == nil || perNode[in.Node] > perNode[move.Node] ||
			(perNode[in.Node] == perNode[move.Node] && in.Node <= move.Node) {
			move = in
		}
	}
	req := move.request(p.domainNodes()[from])
	to, err := p.placementView().Place(req)
	if err != nil {
		return // no other domain has room for it
	}
	toFD := p.nodes[to].FaultDomain
	if len(perFD[toFD])+2 > len(perFD[from]) {
		p.cluster.Release(to, req.CPU, req.Memory)
		p.cluster.Uncount(req.Group, to)
		return
	}
	move.Evicting, move.Rebalancing = true, true
	p.touch(move)
	p.moves++
	repl := p.newInstance(svc, role, move.Slot, move.ID)
	p.assign(repl, to)
	p.event(api.Event{Type: "instance.rebalancing", Tenant: move.Tenant, Service: move.Service, Role: move.Role, Instance: move.ID, Node: move.Node,
		Message: fmt.Sprintf("instance %s moves from %s (fault domain %s, %d of role %s's %d instances) to %s (fault domain %s, %d) to spread its role; it stops once %s is healthy there",
			move.ID, move.Node, from, len(perFD[from]), role.Name, role.Instances, to, toFD, len(perFD[toFD]), repl.ID)})
}

// checkMove gives up a rebalancing move whose replacement is gone, keeps
// failing to start, or is not healthy within the upgrade timeout: the
// original stays where it is and keeps serving, the replacement stops.
func (p *pass) checkMove(in, repl *instanceRecord) {
	var why string
	switch {
	case repl == nil:
		why = "its replacement is gone"
	case repl.FailedStarts >= api.FailingAfter:
		why = fmt.Sprintf("its replacement %s keeps failing to start: %s", repl.ID, repl.LastError)
	case p.now.Sub(repl.CreatedAt) > p.c.cfg.UpgradeTimeout:
		why = fmt.Sprintf("its replacement %s was not healthy within %s", repl.ID, p.c.cfg.UpgradeTimeout)
	default:
		p.wakeAt(repl.CreatedAt.Add(p.c.cfg.UpgradeTimeout))
		return
	}
	in.Evicting, in.Rebalancing, in.MoveFailed = false, false, p.now
	p.touch(in)
	if repl != nil {
		p.stop(repl)
	}
	p.event(api.Event{Type: "instance.rebalance-failed", Level: "warn", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
		Message: fmt.Sprintf("move of instance %s given up: %s; it keeps running on %s, and its role tries no other move for %s", in.ID, why, in.Node, rebalanceRetry)})
}

// roomierDomain says whether a fault domain with a ready node holds at
// least two fewer of the role than most (perFD): only then can a move
// help. Without it, every settled role asked placement for a node in
// every pass.
func (p *pass) roomierDomain(perFD map[string][]*instanceRecord, most int) bool {
	for fd, names := range p.domainNodes() {
		if len(perFD[fd])+2 > most {
			continue
		}
		for _, name := range names {
			if p.nodes[name].State == api.NodeReady {
				return true
			}
		}
	}
	return false
}

// domainNodes is the names of the nodes in each fault domain, sorted.
func (p *pass) domainNodes() map[string][]string {
	if p.byDomain == nil {
		p.byDomain = map[string][]string{}
		for name, n := range p.nodes {
			p.byDomain[n.FaultDomain] = append(p.byDomain[n.FaultDomain], name)
		}
		for _, names := range p.byDomain {
			slices.Sort(names)
		}
	}
	return p.byDomain
}
