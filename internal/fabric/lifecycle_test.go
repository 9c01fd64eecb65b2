package fabric

import (
	"errors"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// record returns the instance in slot of the web role that is live (or,
// with any, the oldest in the slot whatever its state).
func (s *sim) slot(slot int) (instanceRecord, bool) {
	for _, in := range s.records("hello") {
		if in.Slot == slot && in.Replaces == "" {
			return in, true
		}
	}
	return instanceRecord{}, false
}

func TestDrainAnnouncesTheRelocationAndWaitsForIt(t *testing.T) {
	s := newSim(t, 2)
	spec := webSpec(1, "1")
	spec.Roles[0].StopNotice = api.Duration(5 * time.Second)
	s.deploy(spec)
	s.settle(20, "1 healthy", func() bool { return s.healthyCurrent("hello", "web") == 1 })
	orig, _ := s.slot(0)
	if _, err := s.c.DrainNode(s.ctx, orig.Node); err != nil {
		t.Fatal(err)
	}
	s.settle(10, "the relocation announced", func() bool {
		in, _ := s.slot(0)
		return in.Scheduled != nil
	})
	in, _ := s.slot(0)
	ev := *in.Scheduled
	if ev.Type != api.EventRelocate || ev.Instance != orig.ID || ev.Status != api.EventScheduled {
		t.Fatalf("scheduled event %+v, want a Relocate of %s", ev, orig.ID)
	}
	// Its node's assignment carries the event, for the metadata service.
	as, _ := s.c.Assignments(s.ctx, orig.Node, 0, 0)
	if len(as.Instances) != 1 || as.Instances[0].Instance.Scheduled == nil || as.Instances[0].Instance.Scheduled.ID != ev.ID {
		t.Fatalf("the node's assignment lacks the event: %+v", as.Instances)
	}
	// The replacement becomes healthy well before the notice ends; the
	// original keeps running until then.
	for range 20 {
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	if in, _ := s.slot(0); in.Desired != api.DesiredRunning {
		t.Fatalf("instance stopped before its notice ended:\n%s", s.dump())
	}
	if n := s.countEvents("instance.moved"); n != 0 {
		t.Errorf("the move was told %d times while its notice ran, want not yet", n)
	}
	// Only its own node may answer for it, and only about this event.
	if _, err := s.c.ScheduledEventAction(s.ctx, "node-x", api.ScheduledEventAction{Instance: orig.ID, EventID: ev.ID, Action: api.ActionAcknowledge}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("another node acknowledged: %v, want not found", err)
	}
	if _, err := s.c.ScheduledEventAction(s.ctx, orig.Node, api.ScheduledEventAction{Instance: orig.ID, EventID: "nope", Action: api.ActionAcknowledge}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("an unknown event acknowledged: %v, want not found", err)
	}
	if _, err := s.c.ScheduledEventAction(s.ctx, orig.Node, api.ScheduledEventAction{Instance: orig.ID, EventID: ev.ID, Action: api.ActionExtend}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("extended without a stopExtension: %v, want conflict", err)
	}
	if _, err := s.c.ScheduledEventAction(s.ctx, orig.Node, api.ScheduledEventAction{Instance: orig.ID, EventID: ev.ID, Action: api.ActionAcknowledge}); err != nil {
		t.Fatal(err)
	}
	s.step()
	if in, ok := s.slot(0); ok && in.ID == orig.ID && in.Desired != api.DesiredStopped {
		t.Fatalf("acknowledged relocation did not go ahead:\n%s", s.dump())
	}
	s.step()
	if n := s.countEvents("instance.moved"); n != 1 {
		t.Errorf("the move was told %d times, want once", n)
	}
	s.settle(20, "moved", func() bool {
		for _, in := range s.records("hello") {
			if in.Node == orig.Node {
				return false
			}
		}
		return s.healthyCurrent("hello", "web") == 1
	})
}

func TestScaleInWaitsForTheNoticeAndOneExtension(t *testing.T) {
	s := newSim(t, 2)
	spec := webSpec(2, "1")
	spec.Roles[0].StopNotice = api.Duration(2 * time.Second)
	spec.Roles[0].StopExtension = api.Duration(3 * time.Second)
	s.deploy(spec)
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	scale := func(n int) {
		if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", n); err != nil {
			t.Fatal(err)
		}
		s.step()
	}

	// Scaled back up before the notice ends: the stop is cancelled.
	scale(1)
	in, _ := s.slot(1)
	if in.Scheduled == nil || in.Scheduled.Type != api.EventStop {
		t.Fatalf("scale-in announced %+v, want a Stop", in.Scheduled)
	}
	scale(2)
	if in, _ := s.slot(1); in.Scheduled != nil || in.Desired != api.DesiredRunning {
		t.Fatalf("scaled back up, the stop is still on: %+v", in.Scheduled)
	}

	scale(1)
	in, _ = s.slot(1)
	ev := *in.Scheduled
	got, err := s.c.ScheduledEventAction(s.ctx, in.Node, api.ScheduledEventAction{Instance: in.ID, EventID: ev.ID, Action: api.ActionExtend})
	if err != nil {
		t.Fatal(err)
	}
	if want := ev.NotBefore.Add(3 * time.Second); !got.NotBefore.Equal(want) || !got.Extended {
		t.Fatalf("extended to %v, want %v", got.NotBefore, want)
	}
	if _, err := s.c.ScheduledEventAction(s.ctx, in.Node, api.ScheduledEventAction{Instance: in.ID, EventID: ev.ID, Action: api.ActionExtend}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("extended twice: %v, want conflict", err)
	}
	s.clock.Advance(4 * time.Second) // past the notice, not past the extension
	s.step()
	if in, _ := s.slot(1); in.Desired != api.DesiredRunning {
		t.Fatalf("stopped before its extended time:\n%s", s.dump())
	}
	s.clock.Advance(1100 * time.Millisecond)
	s.step()
	if in, ok := s.slot(1); ok && (in.Desired != api.DesiredStopped || in.Scheduled.Status != api.EventStarted) {
		t.Fatalf("not stopped after its extended time: %+v\n%s", in.Scheduled, s.dump())
	}
	s.settle(10, "1 left", func() bool { return len(s.records("hello")) == 1 })
}

func TestUpgradeAnnouncesAnUpgrade(t *testing.T) {
	s := newSim(t, 1)
	spec := webSpec(1, "1")
	spec.Roles[0].StopNotice = api.Duration(time.Second)
	s.deploy(spec)
	s.settle(20, "1 healthy", func() bool { return s.healthyCurrent("hello", "web") == 1 })
	spec.Roles[0].Settings["VERSION"] = "2"
	s.deploy(spec)
	s.step()
	in, _ := s.slot(0)
	if in.Scheduled == nil || in.Scheduled.Type != api.EventUpgrade || in.Desired != api.DesiredRunning {
		t.Fatalf("upgrade announced %+v (desired %s), want an Upgrade not yet started", in.Scheduled, in.Desired)
	}
	s.settle(30, "upgraded", func() bool { return s.healthyCurrent("hello", "web") == 1 && len(s.records("hello")) == 1 })
}

func TestLiveSettingsReachInstancesWithoutReplacingThem(t *testing.T) {
	s := newSim(t, 2)
	spec := webSpec(2, "1")
	spec.Roles[0].LiveSettings = true
	s.deploy(spec)
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	before := map[string]bool{}
	for _, in := range s.records("hello") {
		before[in.ID] = true
	}
	spec.Roles[0].Settings = map[string]string{"VERSION": "1", "COLOR": "blue"}
	svc := s.deploy(spec)
	s.settle(5, "settings handed over", func() bool {
		for _, in := range s.records("hello") {
			if in.Spec.Settings["COLOR"] != "blue" {
				return false
			}
		}
		return true
	})
	for range 5 {
		s.step()
	}
	for _, in := range s.records("hello") {
		if !before[in.ID] || in.Scheduled != nil || in.Version != svc.Version {
			t.Errorf("instance %s (version %d, scheduled %+v): want the same instances at version %d, nothing scheduled", in.ID, in.Version, in.Scheduled, svc.Version)
		}
		as, _ := s.c.Assignments(s.ctx, in.Node, 0, 0)
		for _, a := range as.Instances {
			if a.Role.Settings["COLOR"] != "blue" {
				t.Errorf("assignment of %s has settings %v", a.Instance.ID, a.Role.Settings)
			}
			if peers := peersOf(t, s, in.Node, a); len(peers) != 2 {
				t.Errorf("instance %s has %d peers, want the role's 2", a.Instance.ID, len(peers))
			}
		}
	}
	if got, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello"); got.Status != api.ServiceStable {
		t.Errorf("service %s after a live settings change, want stable", got.Status)
	}
}
