package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/ociimage"
	"github.com/weftcloud/weft/internal/procstat"
)

// requireDrives skips a test when this host cannot mount drives.
func requireDrives(t testing.TB) {
	t.Helper()
	if err := drive.Available(); err != nil {
		t.Skipf("drives cannot be mounted here: %v", err)
	}
}

// sweepDrives takes down the drives that the test's agents, killed, left
// mounted under dir (NODE/drives/INSTANCE/DRIVE/{mnt,work}), so that the
// test's folder can be removed.
func sweepDrives(t testing.TB, dir string) {
	found, _ := filepath.Glob(filepath.Join(dir, "*", "drives", "*", "*", "work"))
	for _, work := range found {
		if err := drive.Clear(drive.Options{Work: work, Mount: filepath.Join(filepath.Dir(work), "mnt")}); err != nil {
			t.Logf("drive left mounted: %v", err)
		}
	}
}

// driveFile reads a file on the drive an instance has mounted on its node.
func (c *cluster) driveFile(in api.Instance, drive, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, in.Node, "drives", in.ID, drive, "mnt", name))
	return string(b), err
}

// driveService writes the model of service name: a persistent process
// role "db" of n instances, each with a 32 MiB drive "data", running the
// shell script run (its package's run.sh). It returns the model's path.
func (c *cluster) driveService(name string, n int, run string) string {
	dir := filepath.Join(c.dir, "models", name)
	os.MkdirAll(filepath.Join(dir, "package"), 0o755)
	writeFile(c.t, filepath.Join(dir, "package", "run.sh"), run)
	os.Chmod(filepath.Join(dir, "package", "run.sh"), 0o755)
	return writeFile(c.t, filepath.Join(dir, "service.yaml"), fmt.Sprintf(`name: %s
roles:
  - name: db
    kind: worker
    runtime: process
    package: ./package
    command: ["./run.sh"]
    instances: %d
    persistence: persistent
    size: {cpu: 0.1, memory: 64Mi}
    drives: [{name: data, size: 32Mi}]
`, name, n))
}

// TestPersistentProcessDrives: a persistent process role of three
// instances, each writing on its slot's drive; its node killed with its
// agent, an instance comes back on another node with what it wrote; the
// role scaled 3 -> 1 -> 3 finds the same drives in the same slots.
func TestPersistentProcessDrives(t *testing.T) {
	parallel(t)
	requireDrives(t)
	c := newCluster(t, 3, storageFlags(t)...)
	// The first instance of a slot writes its name on the drive; every
	// instance appends its own, then both are synced before it says so.
	model := c.driveService("keeper", 3, `#!/bin/sh
set -e
cd "$WEFT_DRIVE_DATA"
[ -f first ] || echo "$WEFT_INSTANCE" > first
echo "$WEFT_INSTANCE" >> starts
sync
touch ready
exec sleep 600
`)
	dir := filepath.Dir(model)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	first := map[int]string{} // slot -> the instance that first wrote its drive
	c.waitFor("each instance's drive written", 30*time.Second, func() bool {
		for _, in := range c.instances("keeper") {
			if _, err := c.driveFile(in, "data", "ready"); err != nil {
				return false
			}
			first[in.Slot] = in.ID
		}
		return len(first) == 3
	})

	victim := c.instances("keeper")[0]
	for _, in := range c.instances("keeper") {
		if in.Node == victim.Node {
			syscall.Kill(pidOf(t, in.ID), syscall.SIGKILL)
		}
	}
	c.kill9(c.agents[victim.Node])
	c.waitFor("the instances of "+victim.Node+" back on other nodes", 60*time.Second, func() bool {
		ins := c.instances("keeper")
		for _, in := range ins {
			if in.Node == victim.Node || in.State != api.StateRunning {
				return false
			}
			if _, err := c.driveFile(in, "data", "ready"); err != nil {
				return false
			}
		}
		return len(ins) == 3
	})
	for _, in := range c.instances("keeper") {
		got, err := c.driveFile(in, "data", "first")
		if err != nil || strings.TrimSpace(got) != first[in.Slot] {
			t.Errorf("slot %d (%s on %s): its drive's first writer reads %q, %v; want %s", in.Slot, in.ID, in.Node, got, err, first[in.Slot])
		}
	}

	// A rolling upgrade replaces each instance on its slot's drive.
	upgraded := writeFile(t, filepath.Join(dir, "v2.yaml"), readFile(t, model)+"    settings: {VERSION: \"2\"}\n")
	c.mustWeft("deploy", "-f", upgraded, "--wait", "--timeout", "60s")
	c.waitFor("the upgraded instances started on their drives", 60*time.Second, func() bool { return startedOnDrives(c, 3) })
	for _, in := range c.instances("keeper") {
		if got, err := c.driveFile(in, "data", "first"); err != nil || strings.TrimSpace(got) != first[in.Slot] {
			t.Errorf("slot %d upgraded (%s): its drive's first writer reads %q, %v; want %s", in.Slot, in.ID, got, err, first[in.Slot])
		}
	}

	// A reimage starts the instance afresh on the same drive.
	reimaged := c.instances("keeper")[0]
	c.mustWeft("instance", "reimage", reimaged.ID, "--wait", "--timeout", "30s")
	c.waitFor("the reimaged instance started on its drive", 30*time.Second, func() bool {
		starts, err := c.driveFile(reimaged, "data", "starts")
		return err == nil && strings.Count(starts, reimaged.ID) == 2
	})

	c.mustWeft("scale", "keeper", "db", "1")
	c.waitFor("one instance left", 30*time.Second, func() bool { return len(c.instances("keeper")) == 1 })
	c.mustWeft("scale", "keeper", "db", "3")
	c.waitFor("three instances started on their drives", 60*time.Second, func() bool { return startedOnDrives(c, 3) })
	for _, in := range c.instances("keeper") {
		got, _ := c.driveFile(in, "data", "first")
		starts, _ := c.driveFile(in, "data", "starts")
		if strings.TrimSpace(got) != first[in.Slot] || (in.Slot > 0 && strings.Count(starts, "\n") < 2) {
			t.Errorf("slot %d after scaling 3 -> 1 -> 3: first writer %q (want %s), starts %q", in.Slot, got, first[in.Slot], starts)
		}
	}

	// A snapshot of slot 0's drive restored into a new drive, named as a
	// slot of another service: that service's instance starts on it.
	snap := strings.TrimSpace(c.mustWeft("drive", "snapshot", "keeper-db-0-data"))
	c.mustWeft("drive", "create", "copy-db-0-data", "--from-snapshot", snap)
	c.mustWeft("deploy", "-f", writeFile(t, filepath.Join(dir, "copy.yaml"), strings.NewReplacer("name: keeper", "name: copy", "instances: 3", "instances: 1").Replace(readFile(t, model))),
		"--wait", "--timeout", "60s")
	c.waitFor("the copy's slot 0 on the restored drive", 30*time.Second, func() bool {
		for _, in := range c.instances("copy") {
			got, err := c.driveFile(in, "data", "first")
			if in.Slot == 0 && err == nil {
				if strings.TrimSpace(got) != first[0] {
					t.Fatalf("the drive restored from %s: its first writer reads %q, want %s", snap, got, first[0])
				}
				return true
			}
		}
		return false
	})
	c.mustWeft("service", "delete", "copy")

	// Deleted, the service takes its drives with it.
	c.mustWeft("service", "delete", "keeper")
	c.waitFor("the slots' drives deleted with the service", 30*time.Second, func() bool {
		drives, err := c.client.Drives(context.Background())
		if err != nil {
			return false
		}
		for _, d := range drives {
			if d.Slot != nil && d.Slot.Service == "keeper" {
				return false
			}
		}
		return true
	})
	// The drive made by hand is the tenant's: it outlives the service
	// that used it.
	if _, err := c.client.Drive(context.Background(), "copy-db-0-data"); err != nil {
		t.Errorf("the restored drive after its service was deleted: %v", err)
	}
}

// importKeeperImage imports the container image "keeper": a static busybox
// that notes its instance and its drive's mount in /data/who (the
// previous note in /data/previous, renamed into place so that a reader
// never sees it half made), syncs, touches /data/ready and sleeps.
func (c *cluster) importKeeperImage() {
	c.t.Helper()
	root := filepath.Join(c.dir, "images", "keeper")
	os.MkdirAll(root, 0o755)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		c.t.Skip("no static busybox to run in the container")
	}
	os.WriteFile(filepath.Join(root, "busybox"), bb, 0o755)
	writeFile(c.t, filepath.Join(root, "run.sh"), `cd /data
[ -f who ] && /busybox cp who previous.new && /busybox mv previous.new previous
echo "$WEFT_INSTANCE $WEFT_DRIVE_STATE" > who
/busybox sync
/busybox touch ready
exec /busybox sleep 600
`)
	img, err := ociimage.Build(root, api.ContainerImageConfig{Entrypoint: []string{"/busybox", "sh", "/run.sh"}}, runtime.GOARCH)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := ociimage.WriteLayout(root+".oci", img); err != nil {
		c.t.Fatal(err)
	}
	c.mustWeft("image", "import", "keeper", root+".oci")
}

// TestContainerDrives: a persistent container role sees its slot's drive
// at the role's mount; deleted keeping its drives and deployed again, each
// slot finds what its earlier instance wrote.
func TestContainerDrives(t *testing.T) {
	parallel(t)
	requireRunc(t)
	requireDrives(t)
	c := newCluster(t, 2, storageFlags(t)...)
	c.importKeeperImage()
	model := writeFile(t, filepath.Join(c.dir, "keeper.yaml"), `name: keeper
roles:
  - name: db
    kind: worker
    runtime: container
    image: keeper
    instances: 2
    persistence: persistent
    size: {cpu: 0.1, memory: 64Mi}
    drives: [{name: state, size: 32Mi, mount: /data}]
`)
	ready := func() map[int]string {
		who := map[int]string{}
		for _, in := range c.instances("keeper") {
			if _, err := c.driveFile(in, "state", "ready"); err != nil {
				return nil
			}
			who[in.Slot], _ = c.driveFile(in, "state", "who")
		}
		return who
	}
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	var before map[int]string
	c.waitFor("each container's drive written", 30*time.Second, func() bool { before = ready(); return len(before) == 2 })
	for slot, who := range before {
		if !strings.HasSuffix(strings.TrimSpace(who), " /data") {
			t.Errorf("slot %d wrote %q: WEFT_DRIVE_STATE is not the mount in the container", slot, who)
		}
	}

	c.mustWeft("service", "delete", "keeper", "--keep-drives")
	c.waitFor("the service deleted", 30*time.Second, func() bool {
		_, err := c.client.Service(context.Background(), "keeper")
		return err != nil
	})
	if drives, err := c.client.Drives(context.Background()); err != nil || len(drives) != 2 {
		t.Fatalf("drives kept: %v, %v", drives, err)
	}
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	c.waitFor("the containers back on their kept drives", 30*time.Second, func() bool {
		ins := c.instances("keeper")
		for _, in := range ins {
			if _, err := c.driveFile(in, "state", "previous"); err != nil {
				return false
			}
		}
		return len(ins) == 2
	})
	for _, in := range c.instances("keeper") {
		prev, err := c.driveFile(in, "state", "previous")
		if err != nil || prev != before[in.Slot] {
			t.Errorf("slot %d: the drive kept holds %q, %v; want %q", in.Slot, prev, err, before[in.Slot])
		}
	}
}

// startedOnDrives says whether keeper has n instances, each running and
// listed in its drive's starts file (its ready file may be there from an
// earlier instance of the slot).
func startedOnDrives(c *cluster, n int) bool {
	ins := c.instances("keeper")
	for _, in := range ins {
		if starts, err := c.driveFile(in, "data", "starts"); err != nil || !strings.Contains(starts, in.ID) || in.State != api.StateRunning {
			return false
		}
	}
	return len(ins) == n
}

// TestDrivesOutliveTheAgent: a process instance keeps writing on its drive
// while its agent is killed with SIGKILL and started again; the drive's
// server, a process of its own, keeps serving it, and the new agent takes
// both over without restarting the instance (the same process, no
// restart). Every line the instance wrote, before, during and after, is on
// the drive. An instance that dies while no agent runs takes its drive's
// server with it; deleted, so does the next one.
func TestDrivesOutliveTheAgent(t *testing.T) {
	parallel(t)
	requireDrives(t)
	c := newCluster(t, 1, append(storageFlags(t), agentRestartTTL...)...)
	// One numbered line every 100 ms, each synced to the storage service.
	model := c.driveService("ticker", 1, `#!/bin/sh
set -e
cd "$WEFT_DRIVE_DATA"
echo "$$" >> starts
i=0
while :; do
	i=$((i+1))
	echo "$i" >> lines
	sync lines
	sleep 0.1
done
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	in := c.instances("ticker")[0]
	lines := func() []string {
		got, _ := c.driveFile(in, "data", "lines")
		return strings.Fields(got)
	}
	c.waitFor("the instance writing on its drive", 30*time.Second, func() bool { return len(lines()) >= 3 })
	pid := pidOf(t, in.ID)
	serverDir := filepath.Join(c.dir, in.Node, "drives", in.ID, "data")
	server, err := driveproc.Find(serverDir)
	if err != nil {
		t.Fatalf("the drive's server: %v", err)
	}
	if server.PID() == c.agents[in.Node].cmd.Process.Pid {
		t.Fatal("the drive is served by the agent itself")
	}

	// The new agent registers (at another address: its API's port is the
	// kernel's pick) only once it has adopted what it found.
	agentAddr := func() string {
		nodes, _ := c.client.Nodes(context.Background())
		for _, n := range nodes {
			if n.Name == in.Node {
				return n.Address
			}
		}
		return ""
	}
	before := agentAddr()
	c.kill9(c.agents[in.Node])
	during := len(lines())
	c.waitFor("the instance writing on its drive with no agent", 30*time.Second, func() bool { return len(lines()) >= during+5 })
	c.startAgent(in.Node)
	c.waitFor("the new agent registered", 30*time.Second, func() bool { a := agentAddr(); return a != "" && a != before })
	after := len(lines())
	c.waitFor("the instance writing on its drive under the new agent", 30*time.Second, func() bool { return len(lines()) >= after+10 })

	if got := pidOf(t, in.ID); got != pid {
		log, _ := os.ReadFile(filepath.Join(serverDir, driveproc.LogFile))
		t.Errorf("the instance's process is %d after the agent's restart, was %d; the drive server's log:\n%s", got, pid, log)
	}
	if starts, _ := c.driveFile(in, "data", "starts"); strings.Count(starts, "\n") != 1 {
		t.Errorf("the instance started %d times on its drive (%q), want once", strings.Count(starts, "\n"), starts)
	}
	if now := c.instances("ticker"); len(now) != 1 || now[0].ID != in.ID || now[0].Restarts != 0 || now[0].State != api.StateRunning {
		t.Errorf("after the agent's restart: %+v, want %s running with no restart", now, in.ID)
	}
	if again, err := driveproc.Find(serverDir); err != nil || again.PID() != server.PID() {
		t.Errorf("the drive's server after the agent's restart: %v, %v; want %d", again, err, server.PID())
	}
	for i, l := range lines() {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("line %d on the drive reads %q: lines were lost", i+1, l)
		}
	}

	// The instance dies while no agent runs (its shim records the exit):
	// the next agent stops its drive's server, and the slot's next
	// instance (the same one started again, or its replacement) starts on
	// the drive, served anew, with all it held.
	c.kill9(c.agents[in.Node])
	syscall.Kill(pid, syscall.SIGKILL)
	c.waitFor("the instance's exit recorded", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(c.dir, in.Node, "instances", in.ID, "exit.json"))
		return err == nil
	})
	c.startAgent(in.Node)
	c.waitFor("the old drive server stopped", 30*time.Second, func() bool { return !procstat.Alive(server.PID(), server.Start()) })
	var next api.Instance
	c.waitFor("the slot's next instance writing on the drive", 60*time.Second, func() bool {
		for _, n := range c.instances("ticker") {
			if starts, err := c.driveFile(n, "data", "starts"); n.State == api.StateRunning && err == nil && strings.Count(starts, "\n") == 2 {
				next = n
				return true
			}
		}
		return false
	})
	if got, _ := c.driveFile(next, "data", "lines"); !strings.HasPrefix(got, "1\n2\n3\n") {
		t.Errorf("the drive under the slot's next instance begins %q", got[:min(len(got), 20)])
	}
	server, err = driveproc.Find(filepath.Join(c.dir, next.Node, "drives", next.ID, "data"))
	if err != nil {
		t.Fatalf("the next instance's drive server: %v", err)
	}

	c.mustWeft("service", "delete", "ticker")
	c.waitFor("the drive's server stopped with the instance", 60*time.Second, func() bool {
		return !procstat.Alive(server.PID(), server.Start())
	})
	if info, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(info), server.Mount()) {
		t.Errorf("the drive is still mounted at %s after its instance was deleted (%v)", server.Mount(), err)
	}
}
