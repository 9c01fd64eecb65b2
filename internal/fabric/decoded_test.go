package fabric

import (
	"reflect"
	"strings"
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
			if err := unmarshal(e.Value, want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %s/%s was changed in place:\n got %+v\nwant %+v", kind, key, got, want)
			}
		}
	}
	check(state.KindInstances, func() map[string]any { return c.instCache.current(c.store, state.KindInstances) })
	check(state.KindNodes, func() map[string]any { return c.nodeCache.current(c.store, state.KindNodes) })
	checkListed(t, &c.instCache, c.store, state.KindInstances)
	checkListed(t, &c.nodeCache, c.store, state.KindNodes)
	checkPrefixes(t, &c.instCache, c.store, state.KindInstances)
}

// checkPrefixes fails when a service's instances as listPrefix finds them
// are not those the store lists under the service's prefix.
func checkPrefixes[T any](t testing.TB, d *decoded[T], s state.Store, kind string) {
	t.Helper()
	prefixes := map[string]bool{"": true, "nothing/": true}
	for _, e := range s.List(kind, "") {
		prefixes[e.Key[:strings.LastIndex(e.Key, "/")+1]] = true
	}
	for prefix := range prefixes {
		got, want := d.listPrefix(s, kind, prefix), s.List(kind, prefix)
		if len(got) != len(want) {
			t.Fatalf("%s under %q: listed %d, the store holds %d", kind, prefix, len(got), len(want))
		}
		for i, e := range want {
			var rec T
			if err := unmarshal(e.Value, &rec); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got[i], rec) {
				t.Fatalf("%s under %q, #%d: got %+v, want %s %+v", kind, prefix, i, *got[i], e.Key, rec)
			}
		}
	}
}

// checkListed fails when the kind's list, kept up to date from the store's
// journal, is not the store's entries decoded afresh, in the same order.
func checkListed[T any](t testing.TB, d *decoded[T], s state.Store, kind string) {
	t.Helper()
	got, revs := d.list(s, kind)
	entries := s.List(kind, "")
	if len(got) != len(entries) || len(revs) != len(entries) {
		t.Fatalf("%s listed %d records (%d revisions), the store holds %d", kind, len(got), len(revs), len(entries))
	}
	for i, e := range entries {
		var want T
		if err := unmarshal(e.Value, &want); err != nil {
			t.Fatal(err)
		}
		if revs[i] != e.Rev || !reflect.DeepEqual(*got[i], want) {
			t.Fatalf("%s listed #%d at revision %d:\n got %+v\nwant %s at %d %+v", kind, i, revs[i], *got[i], e.Key, e.Rev, want)
		}
	}
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

// TestServicesPagesAreTheList: the services read a page at a time from the
// state, each with only its own instances, are the whole list's, role
// counts included.
func TestServicesPagesAreTheList(t *testing.T) {
	s := newSim(t, 3)
	for _, name := range []string{"e", "a", "d", "b", "c"} {
		spec := webSpec(2, "1")
		spec.Name = name
		s.deploy(spec)
	}
	s.settle(20, "10 healthy", func() bool {
		n := 0
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			n += s.healthyCurrent(name, "web")
		}
		return n == 10
	})
	for _, tenant := range []string{api.DefaultTenant, api.AllTenants} {
		want := s.c.Services(s.ctx, tenant)
		var got []api.Service
		after := ""
		for pages := 0; ; pages++ {
			page, more := s.c.ServicesPage(s.ctx, tenant, after, 2)
			got = append(got, page...)
			if !more {
				break
			}
			if pages > 5 {
				t.Fatal("pages never end")
			}
			after = serviceKey(page[len(page)-1].Tenant, page[len(page)-1].Name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: pages of 2:\n%+v\nwant the whole list:\n%+v", tenant, got, want)
		}
		if len(want) != 5 || want[0].Roles[0].Healthy != 2 {
			t.Errorf("%s: the whole list is %+v, want 5 services of 2 healthy instances", tenant, want)
		}
	}
}
