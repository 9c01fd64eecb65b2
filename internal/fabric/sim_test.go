package fabric

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
)

// sim is a controller over a real store with simulated nodes: each step the
// nodes read their assignments and report every assigned instance as
// running (healthy unless the test says otherwise), and the controller
// reconciles. Time only moves when the test says so.
type sim struct {
	t     testing.TB
	ctx   context.Context
	c     *Controller
	store *state.DB
	clock *fakeClock
	nodes map[string]*simNode
	pkg   string // digest of an uploaded package
	// unhealthy marks instances whose template setting VERSION has this value as failing their probe.
	unhealthyVersion string
	// failingVersion marks instances whose template setting VERSION has
	// this value as failing to start, once more on every step.
	failingVersion string
	// slowExtension names an extension version the nodes report as still
	// transitioning (its handlers run).
	slowExtension string
	// gate is what step, like Run, knows of the last pass: a step runs a
	// pass only when one is due.
	gate passGate
}

type simNode struct {
	name, fd string
	cpu      float64
	dead     bool
	running  map[string]api.InstanceStatus
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newSim(t testing.TB, nodes int) *sim {
	t.Helper()
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pkgs, err := pkgstore.Open(filepath.Join(dir, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	// The timer tick off: a step runs a pass only when one is due, so every
	// timer a test waits for must wake its pass itself (pass.wakeAt).
	c := New(Config{HeartbeatTTL: 2 * time.Second, UpgradeTimeout: 10 * time.Second, Clock: clock.Now, TimerTick: time.Hour}, store, pkgs, nil)
	s := &sim{t: t, ctx: context.Background(), c: c, store: store, clock: clock, nodes: map[string]*simNode{}}
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := c.PutPackage(s.ctx, &empty)
	if err != nil {
		t.Fatal(err)
	}
	s.pkg = pkg.Digest
	for i := 1; i <= nodes; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4)
	}
	return s
}

// newVMSim is a sim of nodes nodes that run processes and VMs, with an
// image "tiny" to boot them from and access to disks.
func newVMSim(t testing.TB, nodes int) *sim {
	t.Helper()
	s := newSim(t, 0)
	s.c.cfg.DiskAccess = func(d api.DiskSpec) (api.DiskAccess, error) { return api.DiskAccess{Name: d.Name}, nil }
	for i := 1; i <= nodes; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4, api.RuntimeProcess, api.RuntimeVM)
	}
	img, _ := json.Marshal(api.Image{Name: "tiny", Type: api.ImageVM, Digest: "sha256:1"})
	if _, err := s.store.Apply(s.ctx, []state.Op{{Kind: state.KindImages, Key: images.Key(api.DefaultTenant, "tiny"), Value: img}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// persistentVM is service db: one persistent VM with a disk, booted from
// newVMSim's image.
func persistentVM() api.ServiceSpec {
	return api.ServiceSpec{Name: "db", UpgradeDomains: 1, Roles: []api.RoleSpec{{
		Name: "vm", Kind: api.KindVM, Runtime: api.RuntimeVM, Image: "tiny", Instances: 1,
		Persistence: api.Persistent, Size: api.Size{CPU: 1, Memory: 256 << 20},
		Disks: []api.DiskSpec{{Name: "os", Size: 1 << 30, Blob: "db-os"}},
	}}}
}

func (s *sim) addNode(name, fd string, cpu float64, runtimes ...string) {
	s.t.Helper()
	if len(runtimes) == 0 {
		runtimes = []string{api.RuntimeProcess}
	}
	n := &simNode{name: name, fd: fd, cpu: cpu, running: map[string]api.InstanceStatus{}}
	s.nodes[name] = n
	_, err := s.c.RegisterNode(s.ctx, api.NodeRegistration{
		Name: name, Address: "http://127.0.0.1:1", Host: "127.0.0.1", FaultDomain: fd,
		Capacity: api.Resources{CPU: cpu, Memory: 8 << 30}, Runtimes: runtimes,
	})
	if err != nil {
		s.t.Fatal(err)
	}
}

// step runs every live node once, then one reconcile pass.
func (s *sim) step() {
	s.t.Helper()
	for _, n := range s.nodes {
		if n.dead {
			continue
		}
		as, err := s.c.Assignments(s.ctx, n.name, 0, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		assigned := map[string]bool{}
		for _, a := range as.Instances {
			id := a.Instance.ID
			assigned[id] = true
			if a.Instance.Desired == api.DesiredStopped {
				n.running[id] = api.InstanceStatus{ID: id, State: api.StateStopped, Health: api.HealthUnknown}
				continue
			}
			if s.failingVersion != "" && a.Role.Settings["VERSION"] == s.failingVersion {
				prev := n.running[id]
				n.running[id] = api.InstanceStatus{ID: id, State: api.StateFailed, Health: api.HealthUnknown,
					Restarts: prev.FailedStarts, FailedStarts: prev.FailedStarts + 1, Message: "exec: no such file",
					LastError: "failed to start: exec: no such file"}
				continue
			}
			health := api.HealthHealthy
			if s.unhealthyVersion != "" && a.Role.Settings["VERSION"] == s.unhealthyVersion {
				health = api.HealthUnhealthy
			}
			n.running[id] = api.InstanceStatus{ID: id, State: api.StateRunning, Health: health, Ports: map[string]int{"http": 20000},
				Extensions: s.extensionStatuses(a.Role.Extensions)}
		}
		for id := range n.running {
			if !assigned[id] {
				delete(n.running, id)
			}
		}
		var hb api.Heartbeat
		for _, st := range n.running {
			hb.Instances = append(hb.Instances, st)
		}
		if _, err := s.c.Heartbeat(s.ctx, n.name, hb); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := s.c.tick(s.ctx, &s.gate); err != nil { // as Run does: a pass if one is due
		s.t.Fatal(err)
	}
	checkDecoded(s.t, s.c)
}

// settle steps until cond holds, failing after max steps.
func (s *sim) settle(max int, what string, cond func() bool) {
	s.t.Helper()
	for i := 0; i < max; i++ {
		if cond() {
			return
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	s.t.Fatalf("%s: not reached after %d steps; instances:\n%s", what, max, s.dump())
}

func (s *sim) dump() string {
	var b strings.Builder
	for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "") {
		fmt.Fprintf(&b, "  %s node=%s ud=%d v=%d desired=%s draining=%v %s/%s %s\n", in.ID, in.Node, in.UpdateDomain, in.Version, in.Desired, in.Draining, in.State, in.Health, in.Message)
	}
	return b.String()
}

func (s *sim) records(service string) []instanceRecord {
	return list[instanceRecord](s.store, state.KindInstances, serviceKey(api.DefaultTenant, service)+"/")
}

// healthyCurrent counts instances of role that are live, healthy and run the role's current template.
func (s *sim) healthyCurrent(service, role string) int {
	svc, _ := get[serviceRecord](s.store, state.KindServices, serviceKey(api.DefaultTenant, service))
	idx := roleIndex(svc.Spec, role)
	if idx < 0 {
		return 0
	}
	hash := templateHash(svc.Spec.Roles[idx])
	n := 0
	for _, in := range s.records(service) {
		if in.Role == role && in.live() && in.healthy() && in.Template == hash {
			n++
		}
	}
	return n
}

func webSpec(instances int, version string) api.ServiceSpec {
	return api.ServiceSpec{
		Name: "hello", UpgradeDomains: 3,
		Roles: []api.RoleSpec{{
			Name: "web", Kind: api.KindWorker, Runtime: api.RuntimeProcess,
			Command:   []string{"./hello"},
			Instances: instances, Size: api.Size{CPU: 0.5, Memory: 64 << 20},
			Settings: map[string]string{"VERSION": version},
		}},
	}
}

func (s *sim) deploy(spec api.ServiceSpec) api.Service {
	s.t.Helper()
	for i := range spec.Roles {
		spec.Roles[i].Package = s.pkg
	}
	svc, err := s.c.Deploy(s.ctx, api.DefaultTenant, spec)
	if err != nil {
		s.t.Fatal(err)
	}
	return svc
}

func TestPlacementSpreadsOverFaultDomains(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(6, "1"))
	s.settle(20, "6 healthy", func() bool { return s.healthyCurrent("hello", "web") == 6 })
	perFD := map[string]int{}
	perUD := map[int]int{}
	for _, in := range s.records("hello") {
		perFD[in.FaultDomain]++
		perUD[in.UpdateDomain]++
	}
	for fd, n := range perFD {
		if n != 2 {
			t.Errorf("fault domain %s has %d instances, want 2 (spread %v)", fd, n, perFD)
		}
	}
	for ud, n := range perUD {
		if n != 2 {
			t.Errorf("update domain %d has %d instances, want 2", ud, n)
		}
	}
}

func TestDeadNodeInstancesAreRecreatedElsewhere(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	s.nodes["node-1"].dead = true
	s.clock.Advance(3 * time.Second)
	s.step() // the pass that notices the silence
	s.settle(20, "3 healthy again", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	for _, in := range s.records("hello") {
		if in.Node == "node-1" {
			t.Errorf("instance %s still on the dead node", in.ID)
		}
	}
	n, _ := s.c.Node(s.ctx, "node-1")
	if n.State != api.NodeDown {
		t.Errorf("node-1 state %s, want down", n.State)
	}
	// The node comes back: it is ready again and gets nothing of its old work.
	s.nodes["node-1"].dead = false
	s.step()
	if n, _ := s.c.Node(s.ctx, "node-1"); n.State != api.NodeReady {
		t.Errorf("node-1 state %s after it came back, want ready", n.State)
	}
	if got := len(s.nodes["node-1"].running); got != 0 {
		t.Errorf("node-1 runs %d instances after coming back, want 0", got)
	}
}

// TestPersistentInstanceWaitsForItsNodeToFence: when a node goes silent,
// its ephemeral instances are replaced as soon as it is declared down, but
// a persistent one only once the node has had time to stop it itself (the
// fence time it announces in heartbeat replies, and then some).
func TestPersistentInstanceWaitsForItsNodeToFence(t *testing.T) {
	s := newVMSim(t, 2)
	s.deploy(persistentVM())
	s.deploy(webSpec(2, "1"))
	s.settle(20, "all running", func() bool {
		return s.healthyCurrent("hello", "web") == 2 && s.healthyCurrent("db", "vm") == 1
	})
	home := s.records("db")[0].Node
	s.nodes[home].dead = true
	seen, _ := s.c.lastSeen(home)
	s.clock.Advance(seen.ttl + 100*time.Millisecond)
	s.step() // declared down
	s.settle(20, "the web instances replaced", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	if in := s.records("db")[0]; in.Node != home {
		t.Fatalf("the persistent instance moved to %s %v after its node went silent, before it could fence", in.Node, s.clock.Now().Sub(seen.at))
	}
	s.clock.Advance(fenceAfter(seen.ttl))
	s.settle(20, "the persistent instance running elsewhere", func() bool {
		in := s.records("db")
		return len(in) == 1 && in[0].Node != home && s.healthyCurrent("db", "vm") == 1
	})
	if reply, err := s.c.Heartbeat(s.ctx, "node-1", api.Heartbeat{}); err != nil || time.Duration(reply.Fence) != fenceAfter(seen.ttl) || persistentGrace(seen.ttl) <= fenceAfter(seen.ttl) {
		t.Errorf("heartbeat reply %+v, %v: the fence time must be announced and shorter than the grace", reply, err)
	}
}

func TestRollingUpgradeGoesOneDomainAtATime(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(6, "1"))
	s.settle(20, "6 healthy", func() bool { return s.healthyCurrent("hello", "web") == 6 })
	s.deploy(webSpec(6, "2"))
	for i := 0; i < 60; i++ {
		// Never more than one update domain (2 of 6 slots) out of service.
		serving := 0
		for _, in := range s.records("hello") {
			if in.Desired == api.DesiredRunning && !in.Draining && in.healthy() {
				serving++
			}
		}
		if serving < 4 {
			t.Fatalf("step %d: only %d instances serving during the upgrade:\n%s", i, serving, s.dump())
		}
		if s.healthyCurrent("hello", "web") == 6 && len(s.records("hello")) == 6 {
			break
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	s.settle(20, "upgrade completes", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
		return svc.Status == api.ServiceStable && s.healthyCurrent("hello", "web") == 6
	})
}

func TestFailingUpgradeHaltsAndRollsBack(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(6, "1"))
	s.settle(20, "6 healthy", func() bool { return s.healthyCurrent("hello", "web") == 6 })
	s.unhealthyVersion = "bad"
	s.deploy(webSpec(6, "bad"))
	s.settle(200, "halted", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
		return svc.Status == api.ServiceHalted
	})
	svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
	if !strings.Contains(svc.Message, "update domain 1 of 3") {
		t.Errorf("halt message %q does not name the domain", svc.Message)
	}
	old := 0
	for _, in := range s.records("hello") {
		if in.Spec.Settings["VERSION"] == "1" && in.healthy() {
			old++
		}
	}
	if old != 4 {
		t.Errorf("%d instances still run the old version, want 4 (two domains untouched):\n%s", old, s.dump())
	}
	if _, err := s.c.Rollback(s.ctx, api.DefaultTenant, "hello"); err != nil {
		t.Fatal(err)
	}
	s.settle(100, "rolled back", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
		return svc.Status == api.ServiceStable && s.healthyCurrent("hello", "web") == 6 && len(s.records("hello")) == 6
	})
	for _, in := range s.records("hello") {
		if in.Spec.Settings["VERSION"] != "1" {
			t.Errorf("instance %s runs version %s after the rollback", in.ID, in.Spec.Settings["VERSION"])
		}
	}
}

func TestDrainMovesInstancesBeforeStoppingThem(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	if _, err := s.c.DrainNode(s.ctx, "node-2"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		healthy := 0
		onNode2 := 0
		for _, in := range s.records("hello") {
			if in.Desired == api.DesiredRunning && !in.Draining && in.healthy() {
				healthy++
			}
			if in.Node == "node-2" {
				onNode2++
			}
		}
		if healthy < 3 {
			t.Fatalf("step %d: %d serving instances during the drain, want 3 throughout:\n%s", i, healthy, s.dump())
		}
		if onNode2 == 0 {
			return
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	t.Fatalf("node-2 still holds instances:\n%s", s.dump())
}

func TestUnplaceableInstanceWaitsForCapacity(t *testing.T) {
	s := newSim(t, 1) // one node with 4 CPU
	spec := webSpec(3, "1")
	spec.Roles[0].Size.CPU = 2
	s.deploy(spec)
	s.settle(10, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	var pending *instanceRecord
	for _, in := range s.records("hello") {
		if in.Node == "" {
			pending = &in
		}
	}
	if pending == nil || !strings.Contains(pending.Message, "CPU") {
		t.Fatalf("want one pending instance whose reason names CPU:\n%s", s.dump())
	}
	s.addNode("node-2", "fd2", 4)
	s.settle(10, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
}

func TestScaleKeepsOtherInstances(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	before := map[string]bool{}
	for _, in := range s.records("hello") {
		before[in.ID] = true
	}
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 5); err != nil {
		t.Fatal(err)
	}
	s.settle(20, "5 healthy", func() bool { return s.healthyCurrent("hello", "web") == 5 })
	kept := 0
	for _, in := range s.records("hello") {
		if before[in.ID] {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("scaling out replaced instances: %d of 3 kept", kept)
	}
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 2); err != nil {
		t.Fatal(err)
	}
	s.settle(20, "2 left", func() bool { return len(s.records("hello")) == 2 })
	for _, in := range s.records("hello") {
		if in.Slot >= 2 {
			t.Errorf("slot %d survived scaling in to 2", in.Slot)
		}
	}
}

func TestPublishedPortConflictIsRefused(t *testing.T) {
	s := newSim(t, 1)
	web := func(name string) api.ServiceSpec {
		spec := webSpec(1, "1")
		spec.Name = name
		spec.Roles[0].Kind = api.KindWeb
		spec.Roles[0].Package = s.pkg
		spec.Roles[0].Endpoints = []api.Endpoint{{Name: "http", Protocol: api.ProtocolHTTP, Port: 8080}}
		return spec
	}
	s.deploy(web("first"))
	_, err := s.c.Deploy(s.ctx, api.DefaultTenant, web("second"))
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "roles[0].endpoints[0].port: 8080 is already published by service first") {
		t.Fatalf("second service on the same port: %v, want a conflict naming the field", err)
	}
	if _, err := s.c.Service(s.ctx, api.DefaultTenant, "second"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the refused service was stored: %v", err)
	}
}

func (s *sim) roleStatus(service, role string) api.RoleStatus {
	s.t.Helper()
	svc, err := s.c.Service(s.ctx, api.DefaultTenant, service)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, rs := range svc.Roles {
		if rs.Name == role {
			return rs
		}
	}
	s.t.Fatalf("service %s has no role %s", service, role)
	return api.RoleStatus{}
}

// TestRoleStatus: a role is updating while its instances start for the
// first time, stable once all are healthy, degraded when one that ran is
// not, and failing when every placed instance keeps failing to start; the
// instances carry their last error.
func TestRoleStatus(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	if got := s.roleStatus("hello", "web").Status; got != api.RoleUpdating {
		t.Errorf("just deployed: role %s, want updating", got)
	}
	s.settle(20, "stable", func() bool { return s.roleStatus("hello", "web").Status == api.RoleStable })

	// One instance that ran turns unhealthy: degraded.
	s.unhealthyVersion = "1"
	s.step()
	if got := s.roleStatus("hello", "web"); got.Status != api.RoleDegraded {
		t.Errorf("unhealthy after running: role %+v, want degraded", got)
	}
	s.unhealthyVersion = ""

	// A new service whose instances cannot start: updating, then failing
	// after api.FailingAfter failed starts, naming why.
	s.failingVersion = "bad"
	spec := webSpec(2, "bad")
	spec.Name = "broken"
	s.deploy(spec)
	s.step()
	if got := s.roleStatus("broken", "web").Status; got != api.RoleUpdating {
		t.Errorf("first failed start: role %s, want updating", got)
	}
	s.settle(api.FailingAfter+2, "failing", func() bool { return s.roleStatus("broken", "web").Status == api.RoleFailing })
	for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "broken") {
		if in.LastError != "failed to start: exec: no such file" || in.FailedStarts < api.FailingAfter {
			t.Errorf("instance %s: last error %q, %d failed starts", in.ID, in.LastError, in.FailedStarts)
		}
	}
	// A role with an instance that cannot be placed is degraded, not failing.
	if got := roleStatus(api.RoleStatus{Desired: 1}, []*instanceRecord{{Instance: api.Instance{State: api.StatePending, Message: "no node has 9 CPU"}}}, false); got != api.RoleDegraded {
		t.Errorf("unplaceable: role %s, want degraded", got)
	}
}

// TestFailingUpgradeHaltsAtOnce: an upgrade whose new instances keep
// failing to start halts without waiting for the upgrade timeout, naming
// the instance's error.
func TestFailingUpgradeHaltsAtOnce(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	s.failingVersion = "bad"
	s.deploy(webSpec(3, "bad"))
	start := s.clock.Now()
	s.settle(20, "halted", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
		return svc.Status == api.ServiceHalted
	})
	if took := s.clock.Now().Sub(start); took >= s.c.cfg.UpgradeTimeout {
		t.Errorf("halted after %s, the upgrade timeout", took)
	}
	svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
	if !strings.Contains(svc.Message, "update domain 1 of 3 is failing") || !strings.Contains(svc.Message, "last error: failed to start: exec: no such file") {
		t.Errorf("halt message %q", svc.Message)
	}
}

// TestControllerPortsAndPrivilegedPortsAreRefused: a published endpoint on
// a port the controller uses, or below 1024 unless the operator allows
// it, is refused naming the field, and nothing is stored.
func TestControllerPortsAndPrivilegedPortsAreRefused(t *testing.T) {
	s := newSim(t, 1)
	s.c.cfg.ReservedPorts = map[int]string{7070: "API", 7071: "Raft", 10000: "storage blob"}
	web := func(kind string, ports ...int) api.ServiceSpec {
		spec := webSpec(1, "1")
		spec.Roles[0].Kind = kind
		spec.Roles[0].Package = s.pkg
		for i, p := range ports {
			spec.Roles[0].Endpoints = append(spec.Roles[0].Endpoints, api.Endpoint{Name: fmt.Sprintf("e%d", i), Protocol: api.ProtocolTCP, Port: p})
		}
		return spec
	}
	tests := []struct {
		name  string
		spec  api.ServiceSpec
		code  error
		wants []string
	}{
		{"API port", web(api.KindWeb, 8080, 7070), api.ErrConflict, []string{"roles[0].endpoints[1].port: 7070 is the controller's API port"}},
		{"Raft and storage", web(api.KindWeb, 7071, 10000), api.ErrConflict, []string{
			"roles[0].endpoints[0].port: 7071 is the controller's Raft port", "roles[0].endpoints[1].port: 10000 is the controller's storage blob port"}},
		{"privileged", web(api.KindWeb, 8080, 80), api.ErrInvalid, []string{
			"roles[0].endpoints[1].port: 80 is a privileged port; the operator allows them with weft server --allow-privileged-ports"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.c.Deploy(s.ctx, api.DefaultTenant, tc.spec)
			if !errors.Is(err, tc.code) {
				t.Fatalf("deploy: %v, want %v", err, tc.code)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if _, err := s.c.Service(s.ctx, api.DefaultTenant, "hello"); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("the refused service was stored: %v", err)
			}
		})
	}
	// A worker's endpoints are not published: its ports are not refused.
	s.deploy(web(api.KindWorker, 80, 7070))
	if _, err := s.c.DeleteService(s.ctx, api.DefaultTenant, "hello", false); err != nil {
		t.Fatal(err)
	}
	s.settle(20, "deleted", func() bool { _, err := s.c.Service(s.ctx, api.DefaultTenant, "hello"); return err != nil })
	// Allowed by the operator.
	s.c.cfg.AllowPrivilegedPorts = true
	s.deploy(web(api.KindWeb, 80))
}

// TestPersistentVMRoleOfManySlots: a persistent vm role of two instances
// (booted from its image, its state on its slots' drives) runs one
// instance per slot; drained off a node, an instance stops before its slot
// starts again elsewhere (it is never live twice, and never migrated,
// which would copy its drives), and the slot keeps its number.
func TestPersistentVMRoleOfManySlots(t *testing.T) {
	s := newVMSim(t, 3)
	s.deploy(api.ServiceSpec{Name: "db", UpgradeDomains: 2, Roles: []api.RoleSpec{{
		Name: "pg", Kind: api.KindWorker, Runtime: api.RuntimeVM, Image: "tiny", Instances: 2,
		Persistence: api.Persistent, Size: api.Size{CPU: 1, Memory: 256 << 20},
	}}})
	s.settle(20, "both running", func() bool { return s.healthyCurrent("db", "pg") == 2 })
	recs := s.records("db")
	if recs[0].Slot == recs[1].Slot {
		t.Fatalf("two instances of slot %d:\n%s", recs[0].Slot, s.dump())
	}
	var moved instanceRecord
	for _, in := range recs {
		if in.Slot == 1 {
			moved = in
		}
	}
	if _, err := s.c.DrainNode(s.ctx, moved.Node); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		live := 0
		var now *instanceRecord
		for _, in := range s.records("db") {
			if in.Slot == 1 && in.Node != "" && in.State != api.StateStopped && in.State != api.StateFailed {
				live++
				now = &in
			}
			if in.Migration != nil {
				t.Fatalf("step %d: instance %s migrates, with its drives:\n%s", i, in.ID, s.dump())
			}
		}
		if live > 1 {
			t.Fatalf("step %d: slot 1 is live on two nodes:\n%s", i, s.dump())
		}
		if now != nil && now.Node != moved.Node && now.healthy() {
			break
		}
		if i == 60 {
			t.Fatalf("slot 1 did not come back off the drained node:\n%s", s.dump())
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}

	// Its node gone silent, slot 0 waits for the node to have fenced it,
	// then comes back elsewhere.
	var lost instanceRecord
	for _, in := range s.records("db") {
		if in.Slot == 0 {
			lost = in
		}
	}
	s.nodes[lost.Node].dead = true
	s.clock.Advance(s.c.cfg.HeartbeatTTL + 100*time.Millisecond)
	s.step() // declared down
	s.step()
	for _, in := range s.records("db") {
		if in.Slot == 0 && in.Node != lost.Node {
			t.Fatalf("slot 0 started on %s before its silent node could fence it:\n%s", in.Node, s.dump())
		}
	}
	s.clock.Advance(fenceAfter(s.c.cfg.HeartbeatTTL))
	s.settle(20, "slot 0 running elsewhere", func() bool {
		for _, in := range s.records("db") {
			if in.Slot == 0 && in.Node != lost.Node && in.healthy() {
				return true
			}
		}
		return false
	})
}
