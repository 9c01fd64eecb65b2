package metering

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/state"
)

var t0 = time.Date(2026, 12, 1, 10, 58, 0, 0, time.UTC)

const smallDim = "process/0.25cpu-128Mi"

// TestStepSplitsHours: a step across an hour puts each part in its hour.
func TestStepSplitsHours(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.deploy("web", 2, smallSize)
	f.settle("two running", runningOn("web", "node-a", "node-a"))
	m := f.meter()
	f.step(m) // the first step starts the count
	f.clock.Advance(90 * time.Second)
	f.step(m) // 10:58:00 -> 10:59:30
	f.clock.Advance(75 * time.Second)
	f.step(m) // 10:59:30 -> 11:00:45

	got := map[string]float64{}
	for _, r := range NewLedger(f.store).Usage("default", t0, t0.Add(time.Hour)) {
		if r.Meter != api.MeterInstanceSeconds || r.Dimension != smallDim || r.Service != "web" || r.Unit != "second" {
			t.Errorf("unexpected record %+v", r)
		}
		got[r.Hour.Format("15:04")] += r.Quantity
	}
	want := map[string]float64{"10:00": 2 * 120, "11:00": 2 * 45}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instance-seconds by hour (-want +got):\n%s", diff)
	}
}

// TestLeaderChange: two meters on one store, as an old leader that has not
// noticed it lost and the new one. The old one's batch, planned on the
// cursor the new one has since moved, is refused and counts nothing; the
// new one carries on from the cursor: every second is counted once.
func TestLeaderChange(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.deploy("web", 3, smallSize)
	f.settle("three running", runningOn("web", "node-a", "node-a", "node-a"))
	old, next := f.meter(), f.meter()
	f.step(old)
	f.clock.Advance(time.Minute)
	f.step(old)

	// The old leader reads the cursor and plans its batch...
	f.clock.Advance(time.Minute)
	stale, err := old.plan(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// ...the new leader steps first...
	f.clock.Advance(5 * time.Second)
	f.step(next)
	// ...and the old one's batch fails on the cursor check.
	idx := f.store.Index()
	if _, err := f.store.Apply(f.ctx, stale); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("the old leader's batch: %v, want ErrConflict", err)
	}
	if f.store.Index() != idx {
		t.Fatal("the refused batch changed the store")
	}
	// A step of the old meter now counts from the new cursor, never twice.
	f.clock.Advance(time.Minute)
	f.step(next)
	f.clock.Advance(30 * time.Second)
	f.step(old)

	elapsed := f.clock.Now().Sub(t0).Seconds()
	want := map[string]float64{"default/web/instance-seconds/" + smallDim: 3 * elapsed}
	if diff := cmp.Diff(want, totals(NewLedger(f.store))); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
}

// TestRelocation: the node of an instance is drained; its replacement runs
// on another node and the original stops. The service is counted once and
// without a gap, whatever instance or node runs it.
func TestRelocation(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.deploy("web", 1, smallSize)
	f.settle("running on node-a", runningOn("web", "node-a"))
	first := f.ctl.Instances(f.ctx, api.DefaultTenant, "web")[0].ID
	f.addNode("node-b")
	m := f.meter()
	f.step(m)
	f.clock.Advance(time.Minute)
	f.step(m)

	if _, err := f.ctl.DrainNode(f.ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	f.settle("moved to node-b", runningOn("web", "node-b"))
	if moved := f.ctl.Instances(f.ctx, api.DefaultTenant, "web")[0]; moved.ID == first {
		t.Fatalf("instance %s is still the original", moved.ID)
	}
	f.clock.Advance(time.Minute)
	f.step(m)
	f.clock.Advance(time.Minute)
	f.step(m)

	want := map[string]float64{"default/web/instance-seconds/" + smallDim: 3 * 60}
	if diff := cmp.Diff(want, totals(NewLedger(f.store))); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
}

// TestOnlyRunningCounted: pending (no room on any node), failed and
// stopped instances are not counted.
func TestOnlyRunningCounted(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.states["crash"] = api.StateFailed
	f.states["gone"] = api.StateStopped
	for _, svc := range []string{"ok", "crash", "gone"} {
		f.deploy(svc, 1, smallSize)
	}
	f.deploy("waits", 1, api.Size{CPU: 3.5, Memory: 128 << 20}) // 0.75 of 4 cores are taken
	f.settle("ok running, crash failed, gone stopped, waits pending", func(list []api.Instance) bool {
		st := map[string]string{}
		for _, in := range list {
			st[in.Service] = in.State
		}
		return cmp.Equal(st, map[string]string{"ok": api.StateRunning, "crash": api.StateFailed,
			"gone": api.StateStopped, "waits": api.StatePending})
	})
	m := f.meter()
	f.step(m)
	f.clock.Advance(time.Minute)
	f.step(m)

	want := map[string]float64{"default/ok/instance-seconds/" + smallDim: 60}
	if diff := cmp.Diff(want, totals(NewLedger(f.store))); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
}

// TestMaxStep: a cursor older than MaxStep (every controller was down) is
// counted for MaxStep only; the rest is recorded as skipped.
func TestMaxStep(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.deploy("web", 1, smallSize)
	f.settle("running", runningOn("web", "node-a"))
	m := New(Config{Store: f.store, Footprint: f.ctl.Footprint, Now: f.clock.Now, MaxStep: 10 * time.Minute})
	f.step(m)
	f.clock.Advance(3 * time.Hour)
	f.step(m)
	want := map[string]float64{"default/web/instance-seconds/" + smallDim: 600}
	if diff := cmp.Diff(want, totals(NewLedger(f.store))); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	e, _ := f.store.Get(state.KindMetering, cursorKey)
	var cur Cursor
	if err := json.Unmarshal(e.Value, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Skipped != 3*3600-600 || !cur.At.Equal(f.clock.Now()) {
		t.Errorf("cursor %+v, want skipped %d at %s", cur, 3*3600-600, f.clock.Now())
	}
}

// TestCountVMsAndDisks: a persistent VM's instance is vm-seconds by size;
// its disks are GiB-hours whether it runs or not.
func TestCountVMsAndDisks(t *testing.T) {
	fp := fabric.Footprint{
		Running: []fabric.RunningInstance{
			{Tenant: "acme", Service: "db", Runtime: api.RuntimeVM, Size: api.Size{CPU: 2, Memory: 4 << 30}, VM: true},
			{Tenant: "acme", Service: "batch", Runtime: api.RuntimeVM, Size: api.Size{CPU: 1, Memory: 1 << 30}},
		},
		Disks: []fabric.VMDisk{
			{Tenant: "acme", Service: "db", Name: "os", Size: 10 << 30},
			{Tenant: "acme", Service: "db", Name: "data1", Size: 2 << 30},
			{Tenant: "acme", Service: "old", Name: "os", Size: 4 << 30}, // a stopped VM
		},
	}
	from := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	got := map[string]float64{}
	for _, r := range count(fp, from, from.Add(time.Hour)) {
		got[r.Hour.Format("15")+" "+r.Service+" "+r.Meter+" "+r.Dimension] = r.Quantity
	}
	want := map[string]float64{
		"10 db vm-seconds 2cpu-4Gi":             1800,
		"11 db vm-seconds 2cpu-4Gi":             1800,
		"10 batch instance-seconds vm/1cpu-1Gi": 1800,
		"11 batch instance-seconds vm/1cpu-1Gi": 1800,
		"10 db disk-gib-hours ":                 6,
		"11 db disk-gib-hours ":                 6,
		"10 old disk-gib-hours ":                2,
		"11 old disk-gib-hours ":                2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}

// TestPrune: buckets older than the retention go once a step crosses an hour.
func TestPrune(t *testing.T) {
	f := newFleet(t, t0, "node-a")
	f.deploy("web", 1, smallSize)
	f.settle("running", runningOn("web", "node-a"))
	m := New(Config{Store: f.store, Footprint: f.ctl.Footprint, Now: f.clock.Now, Retention: 2 * time.Hour})
	f.step(m)
	for range 4 * 6 {
		f.clock.Advance(10 * time.Minute)
		f.step(m)
	}
	var hours []string
	for _, r := range NewLedger(f.store).Usage("", time.Time{}, f.clock.Now()) {
		hours = append(hours, r.Hour.Format("15"))
	}
	// 14:58 now: 12:00 is the oldest hour within two hours.
	if diff := cmp.Diff([]string{"12", "13", "14"}, hours); diff != "" {
		t.Errorf("hours kept (-want +got):\n%s", diff)
	}
}
