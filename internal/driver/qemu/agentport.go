package qemu

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/qmp"
)

// The guest agent's port: port 1 of the virtio-serial device agentSerialID.
// A virtio-serial device's queues are port 0's receive and transmit
// queues, then the control queues, then two per further port: port 1's
// are 4 (host to guest) and 5 (guest to host).
const (
	agentSerialID   = "serial0"
	agentPortToVM   = 4
	agentPortFromVM = 5
)

// agentPortState describes the VM's run state and the guest agent port's
// queues as QEMU sees them, for the log of a guest agent that stopped
// answering: whether the guest read what QEMU gave it, whether QEMU took
// what the guest wrote (it was told, and the host reads), and the last
// index each side was notified of.
func (d *Driver) agentPortState(in *instance) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out string
	err := d.qmp(ctx, in, func(q *qmp.Client) error {
		st, err := q.QueryStatus(ctx)
		if err != nil {
			return err
		}
		devs, err := q.VirtioDevices(ctx)
		if err != nil {
			return err
		}
		path := ""
		for _, dv := range devs {
			if strings.HasPrefix(dv.Path, "/machine/peripheral/"+agentSerialID) {
				path = dv.Path
				break
			}
		}
		if path == "" {
			return fmt.Errorf("no device %s among %v", agentSerialID, devs)
		}
		toVM, err := q.VirtQueue(ctx, path, agentPortToVM)
		if err != nil {
			return err
		}
		fromVM, err := q.VirtQueue(ctx, path, agentPortFromVM)
		if err != nil {
			return err
		}
		out = "VM " + st.Status + "; " + describePort(toVM, fromVM)
		return nil
	})
	if err != nil {
		return "unknown: " + err.Error()
	}
	return out
}

// describePort says what the two queues of a port hold. The guest's driver
// (virtio_console) keeps every buffer of its receiving queue with QEMU
// and gives one back as soon as it has read it, so the buffers missing
// from the queue were filled and are not read yet. Indices are 16-bit
// counters that wrap.
func describePort(toVM, fromVM qmp.VirtQueue) string {
	ahead := func(a, b int) int { return int(uint16(a - b)) }
	return fmt.Sprintf("to the guest: %d buffers filled (notified up to %d), %d of them not read yet; "+
		"from the guest: %d sent (notified up to %d), %d taken and not yet sent, %d written and not taken by QEMU",
		toVM.UsedIdx, toVM.SignalledUsed, toVM.Size-ahead(toVM.AvailIdx, toVM.LastAvailIdx),
		fromVM.UsedIdx, fromVM.SignalledUsed, fromVM.InUse, ahead(fromVM.AvailIdx, fromVM.LastAvailIdx))
}

// lastHeard says how long ago the guest agent last sent anything on the
// current connection.
func (in *instance) lastHeard() string {
	c := in.connected()
	if c == nil {
		return "not connected"
	}
	if t := c.Heard(); !t.IsZero() {
		return time.Since(t).Round(time.Millisecond).String() + " ago"
	}
	return "never on this connection"
}
