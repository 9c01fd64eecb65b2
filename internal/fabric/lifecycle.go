package fabric

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Scheduled events: before the fabric stops a running instance (scale-in,
// upgrade, relocation off a draining node, deletion) it records a
// ScheduledEvent on the instance with a NotBefore of now plus the role's
// stopNotice. The instance's node shows it through the metadata service;
// the stop goes ahead once NotBefore has passed or the instance
// acknowledged it, and the instance may push NotBefore back once by the
// role's stopExtension. A stop that is no longer wanted (the node was
// undrained, the role scaled back up) cancels its event.

// noticeGiven reports whether in may be stopped now, announcing the stop
// first when it has not been. Every pass that wants in stopped calls it
// (through stop), so an announced stop goes ahead in the first pass after
// its time.
func (p *pass) noticeGiven(in *instanceRecord) bool {
	p.asked[in.ID] = true
	ev := in.Scheduled
	if ev == nil {
		if in.State != api.StateRunning {
			return true // nothing runs that could be told
		}
		ev = p.schedule(in)
	}
	if !ev.Acknowledged && p.now.Before(ev.NotBefore) {
		p.wakeAt(ev.NotBefore)
		return false
	}
	if ev.Status != api.EventStarted {
		ev.Status = api.EventStarted
		p.touch(in)
	}
	return true
}

// schedule announces the stop of in, of the type its reason gives.
func (p *pass) schedule(in *instanceRecord) *api.ScheduledEvent {
	ev := &api.ScheduledEvent{
		ID: rand.Text()[:16], Type: p.stopReason(in), Instance: in.ID, Status: api.EventScheduled,
		NotBefore: p.now.Add(time.Duration(in.Spec.StopNotice)),
	}
	in.Scheduled = ev
	p.touch(in)
	p.event(api.Event{Type: "instance.scheduled", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
		Message: fmt.Sprintf("instance %s: %s scheduled, not before %s", in.ID, ev.Type, ev.NotBefore.Format(time.RFC3339))})
	return ev
}

// stopReason says why the fabric takes in out of service.
func (p *pass) stopReason(in *instanceRecord) string {
	if in.Evicting {
		return api.EventRelocate
	}
	for _, svc := range p.services {
		if !in.ofService(svc) || svc.Status == api.ServiceDeleting {
			continue
		}
		if idx := roleIndex(svc.Spec, in.Role); idx >= 0 {
			role := svc.Spec.Roles[idx]
			if in.Slot < role.Instances && in.Template != templateHash(role) {
				return api.EventUpgrade
			}
		}
	}
	return api.EventStop
}

// lifecycle runs after the services' steps: it announces relocations as
// soon as a replacement is being made (the notice runs while it starts),
// cancels the events of stops no step asked for in this pass, and hands
// live settings to the instances of roles that have them, and the roles'
// extensions to their instances.
func (p *pass) lifecycle() {
	p.handExtensions()
	for _, in := range p.sortedInstances() {
		if in.Desired != api.DesiredRunning || in.Draining {
			continue
		}
		switch {
		case in.Evicting && in.Scheduled == nil && in.State == api.StateRunning:
			p.schedule(in)
		case in.Scheduled != nil && !in.Evicting && !p.asked[in.ID]:
			p.event(api.Event{Type: "instance.unscheduled", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
				Message: fmt.Sprintf("instance %s: the %s scheduled for it is cancelled", in.ID, in.Scheduled.Type)})
			in.Scheduled = nil
			p.touch(in)
		}
	}
	for _, svc := range p.services {
		if svc.Status == api.ServiceDeleting {
			continue
		}
		for _, in := range p.instancesOf(svc) {
			idx := roleIndex(svc.Spec, in.Role)
			if idx < 0 || !in.Spec.LiveSettings || !in.live() {
				continue
			}
			role := svc.Spec.Roles[idx]
			if in.Template != templateHash(role) || maps.Equal(in.Spec.Settings, role.Settings) {
				continue
			}
			in.Spec.Settings = maps.Clone(role.Settings)
			in.Version = svc.Version
			p.touch(in)
			p.event(api.Event{Type: "instance.settings", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
				Message: fmt.Sprintf("instance %s: live settings of version %d handed to it without a restart", in.ID, svc.Version)})
		}
	}
}

// ScheduledEventAction takes an instance's answer to its scheduled event,
// forwarded by the agent of node, the instance's node: acknowledge (the
// stop may go ahead now) or extend (once, by the role's stopExtension).
// It returns the event as it now is; ErrNotFound when node does not run
// the instance or the instance has no such event, ErrConflict when the
// action is not possible any more.
func (c *Controller) ScheduledEventAction(ctx context.Context, node string, act api.ScheduledEventAction) (api.ScheduledEvent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.findInstance(api.AllTenants, act.Instance)
	if !ok || rec.Node != node {
		return api.ScheduledEvent{}, api.Errorf(api.CodeNotFound, "instance %q does not run on node %s", act.Instance, node)
	}
	ev := rec.Scheduled
	if ev == nil || ev.ID != act.EventID {
		return api.ScheduledEvent{}, api.Errorf(api.CodeNotFound, "instance %s has no scheduled event %q", rec.ID, act.EventID)
	}
	switch act.Action {
	case api.ActionAcknowledge:
		if ev.Acknowledged {
			return *ev, nil
		}
		ev.Acknowledged = true
	case api.ActionExtend:
		ext := time.Duration(rec.Spec.StopExtension)
		switch {
		case ev.Status == api.EventStarted || ev.Acknowledged:
			return api.ScheduledEvent{}, api.Errorf(api.CodeConflict, "event %s of instance %s has started or was acknowledged: it cannot be extended", ev.ID, rec.ID)
		case ev.Extended:
			return api.ScheduledEvent{}, api.Errorf(api.CodeConflict, "event %s of instance %s was extended already; an event is extended once", ev.ID, rec.ID)
		case ext == 0:
			return api.ScheduledEvent{}, api.Errorf(api.CodeConflict, "role %s allows no extension of its scheduled events (stopExtension)", rec.Role)
		}
		ev.NotBefore = ev.NotBefore.Add(ext)
		ev.Extended = true
	default:
		return api.ScheduledEvent{}, api.Errorf(api.CodeInvalid, "action: %q is not %s or %s", act.Action, api.ActionAcknowledge, api.ActionExtend)
	}
	rec.UpdatedAt = c.now()
	if err := c.apply(ctx, []state.Op{put(state.KindInstances, rec.key(), rec)}); err != nil {
		return api.ScheduledEvent{}, err
	}
	c.events.Add(api.Event{Type: "instance.scheduled." + act.Action, Tenant: rec.Tenant, Service: rec.Service, Role: rec.Role, Instance: rec.ID, Node: node,
		Message: fmt.Sprintf("instance %s: %s %sd by the instance, not before %s", rec.ID, ev.Type, act.Action, ev.NotBefore.Format(time.RFC3339))})
	c.poke()
	return *ev, nil
}

// peers lists, by placement group (a role), the role's placed instances
// as their fellow instances see them in their metadata.
func peers(insts []*instanceRecord, nodes map[string]nodeRecord) map[string][]api.Peer {
	out := map[string][]api.Peer{}
	for _, in := range insts {
		if in.Node == "" || in.Desired != api.DesiredRunning {
			continue
		}
		host := nodes[in.Node].Host
		if h, _, err := net.SplitHostPort(in.Address); err == nil {
			host = h
		}
		out[in.group()] = append(out[in.group()], api.Peer{
			ID: in.ID, Node: in.Node, Host: host, Ports: maps.Clone(in.Ports),
			FaultDomain: in.FaultDomain, UpdateDomain: in.UpdateDomain, State: in.State, Health: in.Health,
		})
	}
	return out
}
