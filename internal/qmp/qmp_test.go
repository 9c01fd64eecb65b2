package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

const qemuBinary = "qemu-system-x86_64"

func requireQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("%s is not installed (apt-get install qemu-system-x86)", qemuBinary)
	}
}

// shortDir is a temporary directory with a short path: unix socket paths
// must stay under 108 bytes, and t.TempDir embeds the test's name.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startQEMU starts a paused machine (or, with -incoming in extra, one that
// waits for a migration and then runs) with no devices and no guest, and
// returns a connected client and a channel closed when QEMU has exited. The
// process is killed at cleanup.
func startQEMU(t *testing.T, extra ...string) (*Client, <-chan struct{}) {
	t.Helper()
	requireQEMU(t)
	sock := filepath.Join(shortDir(t), "qmp.sock")
	args := append([]string{"-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none",
		"-m", "64", "-qmp", "unix:" + sock + ",server=on,wait=off"}, extra...)
	if !slices.Contains(extra, "-incoming") {
		args = append(args, "-S")
	}
	cmd := exec.Command(qemuBinary, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := Dial(ctx, sock)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c, exited
		}
		select {
		case <-ctx.Done():
			t.Fatalf("connect to QMP: %v", err)
		case <-exited:
			t.Fatalf("QEMU exited: %v", cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nextEvent returns the next event named name, skipping others.
func nextEvent(t *testing.T, events <-chan Event, name string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the event channel closed before %s", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", name)
		}
	}
}

func TestStatusAndEvents(t *testing.T) {
	c, _ := startQEMU(t)
	ctx := testContext(t)
	if v := c.Version(); v.Major < 2 {
		t.Errorf("version %v from the greeting", v)
	}
	st, err := c.QueryStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running || st.Status != "prelaunch" {
		t.Errorf("status of a machine started with -S: %+v, want prelaunch", st)
	}
	events, unsubscribe := c.Events()
	defer unsubscribe()

	before := time.Now().Add(-time.Second)
	if err := c.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, "RESUME")
	if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("RESUME timestamp %v is not now", ev.Time)
	}
	if st, _ := c.QueryStatus(ctx); !st.Running {
		t.Errorf("status after cont: %+v", st)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events, "STOP")
	if st, _ := c.QueryStatus(ctx); st.Running || st.Status != "paused" {
		t.Errorf("status after stop: %+v", st)
	}
}

func TestConcurrentExecute(t *testing.T) {
	c, _ := startQEMU(t)
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for range 20 {
				var err error
				if i%2 == 0 {
					var st Status
					err = c.Execute(ctx, "query-status", nil, &st)
					if err == nil && st.Status != "prelaunch" {
						err = errors.New("wrong status " + st.Status)
					}
				} else {
					var name struct {
						Name string `json:"name"`
					}
					err = c.Execute(ctx, "query-name", nil, &name)
					if err == nil && name.Name != "" {
						err = errors.New("a name for an unnamed VM: " + name.Name)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestErrors(t *testing.T) {
	c, _ := startQEMU(t)
	ctx := testContext(t)
	err := c.Execute(ctx, "no-such-command", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v, want a CommandNotFound *Error", err)
	}
	err = c.Execute(ctx, "migrate", map[string]any{"uri": "bogus:x"}, nil)
	if !errors.As(err, &qe) || qe.Class != "GenericError" || qe.Desc == "" {
		t.Errorf("bad migrate URI: %v, want a GenericError *Error", err)
	}
	// The connection still works after errors.
	if _, err := c.QueryStatus(ctx); err != nil {
		t.Error(err)
	}
	// Arguments that do not encode fail before anything is sent.
	if err := c.Execute(ctx, "query-status", map[string]any{"x": make(chan int)}, nil); err == nil {
		t.Error("unencodable arguments were accepted")
	}
	// A cancelled context ends a call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Execute(cctx, "query-status", nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestQuit(t *testing.T) {
	c, exited := startQEMU(t)
	ctx := testContext(t)
	events, unsubscribe := c.Events()
	defer unsubscribe()
	if err := c.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	ev := nextEvent(t, events, "SHUTDOWN")
	var data struct {
		Guest  bool   `json:"guest"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.Guest || data.Reason != "host-qmp-quit" {
		t.Errorf("SHUTDOWN data %s", ev.Data)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after quit")
	}
	for range events {
		// drained: the channel closes with the connection
	}
	if err := c.Execute(ctx, "query-status", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after quit: %v, want ErrClosed", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("QEMU still runs after quit")
	}
}

func TestLiveMigration(t *testing.T) {
	requireQEMU(t)
	ctx := testContext(t)
	src, _ := startQEMU(t)
	dst, _ := startQEMU(t, "-incoming", "defer")
	if st, _ := dst.QueryStatus(ctx); st.Status != "inmigrate" {
		t.Errorf("destination status %+v, want inmigrate", st)
	}
	if err := src.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	uri := "unix:" + filepath.Join(shortDir(t), "mig.sock")
	if err := dst.MigrateIncoming(ctx, uri); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{src, dst} {
		if err := c.SetMigrationCapabilities(ctx, map[string]bool{"events": true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.SetMigrationParameters(ctx, MigrationParameters{DowntimeLimit: 50 * time.Millisecond, MaxBandwidth: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	srcEvents, unsubscribe := src.Events()
	defer unsubscribe()
	dstEvents, unsubscribeDst := dst.Events()
	defer unsubscribeDst()

	if err := src.Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	var info MigrationInfo
	for {
		var err error
		if info, err = src.QueryMigrate(ctx); err != nil {
			t.Fatal(err)
		}
		if info.Done() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info.Status != MigrationCompleted {
		t.Fatalf("migration %s: %s", info.Status, info.ErrorDesc)
	}
	if info.TotalTime() <= 0 || info.DowntimeMillis < 0 || info.RAM == nil || info.RAM.Total < 64<<20 || info.RAM.Transferred <= 0 {
		t.Errorf("completed migration info %+v (ram %+v)", info, info.RAM)
	}
	t.Logf("migration: total %v, downtime %v, transferred %d bytes of %d", info.TotalTime(), info.Downtime(), info.RAM.Transferred, info.RAM.Total)

	// Both ends announced the end; the source saw at least one pass.
	migrationEvent(t, srcEvents, MigrationCompleted)
	migrationEvent(t, dstEvents, MigrationCompleted)

	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := dst.QueryStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination status after migration: %+v, want running", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := src.QueryStatus(ctx); st.Running || st.Status != "postmigrate" {
		t.Errorf("source status after migration: %+v, want postmigrate", st)
	}
}

func migrationEvent(t *testing.T, events <-chan Event, status string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	passes := 0
	for {
		select {
		case ev := <-events:
			switch ev.Name {
			case "MIGRATION_PASS":
				passes++
			case "MIGRATION":
				var data struct {
					Status string `json:"status"`
				}
				json.Unmarshal(ev.Data, &data)
				if data.Status == status {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no MIGRATION %s event (saw %d passes)", status, passes)
		}
	}
}

// TestDialTimeout checks that a peer that never greets does not hang Dial.
func TestDialTimeout(t *testing.T) {
	sock := filepath.Join(shortDir(t), "silent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := Dial(ctx, sock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to a silent peer: %v, want a deadline error", err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("Dial took %v", took)
	}
}

func TestVirtQueue(t *testing.T) {
	c, _ := startQEMU(t, "-device", "virtio-serial-device,id=serial0", "-device", "virtserialport,bus=serial0.0,name=p")
	ctx := testContext(t)
	ds, err := c.VirtioDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []VirtioDevice{{Path: "/machine/peripheral/serial0", Name: "virtio-serial"}}; !slices.Equal(ds, want) {
		t.Fatalf("devices %+v, want %+v", ds, want)
	}
	// No guest has run: every index of the port's queues is 0.
	q, err := c.VirtQueue(ctx, ds[0].Path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if q != (VirtQueue{Size: q.Size}) || q.Size == 0 {
		t.Errorf("queue 5 of a machine that never ran: %+v, want a size and every index 0", q)
	}
	if _, err := c.VirtQueue(ctx, ds[0].Path, 1000); err == nil {
		t.Error("queue 1000: no error")
	}
	if _, err := c.VirtQueue(ctx, "/machine/peripheral/nothing", 0); err == nil {
		t.Error("a device that does not exist: no error")
	}
}
