package fabric

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// checkDecoded fails when a record the controller keeps decoded differs
// from what the store holds at the same revision: something changed a
// shared record in place. Every simulated step runs it, so every sim test
// (drains, upgrades, migrations, scheduled events) checks the passes.
func checkDecoded(t testing.TB, c *Controller) {
	t.Helper()
	check := func(kind string, recs func() map[string]any) {
		for key, got := range recs() {
			e, ok := c.store.Get(kind, key)
			if !ok {
				continue
			}
			want := reflect.New(reflect.TypeOf(got).Elem()).Interface()
			if err := json.Unmarshal(e.Value, want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %s/%s was changed in place:\n got %+v\nwant %+v", kind, key, got, want)
			}
		}
	}
	check(state.KindInstances, func() map[string]any { return c.instCache.current(c.store, state.KindInstances) })
	check(state.KindNodes, func() map[string]any { return c.nodeCache.current(c.store, state.KindNodes) })
}

// current is every record kept that is still at the store's revision.
func (d *decoded[T]) current(s state.Store, kind string) map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]any{}
	for key, r := range d.recs {
		if e, ok := s.Get(kind, key); ok && e.Rev == r.rev {
			out[key] = r.v
		}
	}
	return out
}

// TestDecodedRecordsStayAsStored: a reconcile pass changes its own copies
// of the records, never the decoded ones it shares: a pass whose write
// fails (the server lost its leadership) must leave the next one the
// state as stored.
func TestDecodedRecordsStayAsStored(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	// An upgrade: each instance's stop is announced a minute ahead.
	v2 := webSpec(3, "2")
	v2.Roles[0].StopNotice = api.Duration(time.Minute)
	s.deploy(v2)
	s.step()
	p := s.c.newPass()
	changed := 0
	for _, in := range p.insts {
		if in.Scheduled != nil {
			// What an acknowledgement does (ScheduledEventAction).
			in.Scheduled.Acknowledged = !in.Scheduled.Acknowledged
			changed++
		}
	}
	if changed == 0 {
		t.Fatalf("no stop announced:\n%s", s.dump())
	}
	checkDecoded(t, s.c)
}
