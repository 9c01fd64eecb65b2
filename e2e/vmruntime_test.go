package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// requireQEMU skips where VMs cannot boot or the default image cannot be
// built (it needs apt-get to fetch the distro's kernel and busybox).
func requireQEMU(t testing.TB) {
	t.Helper()
	requireE2E(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mkfs.ext4", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the vm runtime and its image need %s (apt-get install qemu-system-x86 qemu-utils e2fsprogs)", tool)
		}
	}
}

// vmService is a persistent VM role whose instances serve their hostname
// over HTTP from busybox httpd, started by the guest agent as the role's
// command, which first writes the instance's name on the slot's drive
// unless the drive has one.
func (c *cluster) vmService(name, image string, port, instances int) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "models")
	os.MkdirAll(dir, 0o755)
	return writeFile(c.t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`name: %s
upgradeDomains: 2
roles:
  - name: web
    kind: vm
    runtime: vm
    image: %s
    instances: %d
    persistence: persistent
    size: {cpu: 1, memory: 256Mi}
    drives: [{name: data, size: 32Mi, mount: /data}]
    command: ["/bin/sh", "-c", "mkdir -p /www && hostname > /www/index.html && { [ -f $WEFT_DRIVE_DATA/first ] || echo $WEFT_INSTANCE > $WEFT_DRIVE_DATA/first; } && sync && exec httpd -f -p $WEFT_PORT_HTTP -h /www"]
    endpoints:
      - {name: http, protocol: http, port: %d}
    health:
      http: {path: /, endpoint: http}
      interval: 500ms
      timeout: 2s
      failures: 3
`, name, image, instances, port))
}

// TestVMRole boots a persistent VM role of 2 instances from the default
// image, each slot with a drive of its own, serves through the load
// balancer, and reimages an instance: what it wrote is gone, because each
// boot starts from a fresh overlay of the image, except on its drive. The
// drives stay with their slots across a rolling upgrade, a drain of a
// node (the instance stops and starts elsewhere) and scaling 2 -> 1 -> 2.
// An agent killed and started again must not be declared down meanwhile
// (agentRestartTTL): no node dies in this test.
func TestVMRole(t *testing.T) {
	vmTest(t)
	c := newCluster(t, 2, append(storageFlags(t), agentRestartTTL...)...)
	c.mustWeft("image", "build", "tiny")
	if nodes := c.mustWeft("nodes"); !strings.Contains(nodes, "vm(") {
		t.Fatalf("the nodes do not offer the vm runtime:\n%s", nodes)
	}
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.vmService("vweb", "tiny", port, 2), "--wait", "--timeout", "3m")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	seen := map[string]bool{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		seen[strings.TrimSpace(get(t, url))] = true
	}
	if len(seen) != 2 {
		t.Errorf("the load balancer reached %d VMs (%v), want 2", len(seen), seen)
	}

	// Each slot has a drive of its own, which its first instance wrote.
	first := map[int]string{}
	for _, in := range c.instances("vweb") {
		first[in.Slot] = in.ID
	}
	var drives []api.Drive
	if err := json.Unmarshal([]byte(c.mustWeft("drive", "list", "-o", "json")), &drives); err != nil {
		t.Fatal(err)
	}
	for slot := range 2 {
		name := api.SlotDriveName("vweb", "web", slot, "data")
		if !slices.ContainsFunc(drives, func(d api.Drive) bool { return d.Name == name && d.Slot != nil && d.Slot.Slot == slot }) {
			t.Errorf("no drive %s for slot %d in %+v", name, slot, drives)
		}
	}
	checkDrives := func(when string) {
		t.Helper()
		ins := c.instances("vweb")
		if len(ins) != 2 {
			t.Fatalf("%s: %d instances, want 2", when, len(ins))
		}
		for _, in := range ins {
			got := strings.TrimSpace(c.mustWeft("exec", in.ID, "--", "cat", "/data/first"))
			if got != first[in.Slot] {
				t.Errorf("%s: slot %d (%s on %s) reads %q on its drive, want %s", when, in.Slot, in.ID, in.Node, got, first[in.Slot])
			}
		}
	}
	checkDrives("after the deploy")

	in := c.instances("vweb")[0]
	c.mustWeft("exec", in.ID, "--", "/bin/sh", "-c", "echo scribble > /root/mark && echo kept > /data/mark && sync")
	c.mustWeft("exec", in.ID, "--", "test", "-e", "/root/mark")
	c.mustWeft("instance", "reimage", in.ID, "--wait", "--timeout", "2m")
	if _, _, code := c.weft("exec", in.ID, "--", "test", "-e", "/root/mark"); code != 1 {
		t.Errorf("after the reimage, test -e of the file the VM wrote: exit %d, want 1", code)
	}
	if got := strings.TrimSpace(c.mustWeft("exec", in.ID, "--", "cat", "/data/mark")); got != "kept" {
		t.Errorf("after the reimage, the file the VM wrote on its drive reads %q", got)
	}

	// A new image is a rolling upgrade, one update domain at a time.
	c.mustWeft("image", "build", "tiny2", "--disk-size", "300Mi")
	c.mustWeft("deploy", "-f", c.vmService("vweb", "tiny2", port, 2), "--wait", "--timeout", "3m")
	for _, in := range c.instances("vweb") {
		if in.Version != 2 || in.State != api.StateRunning {
			t.Errorf("after the upgrade: %s at version %d, %s", in.ID, in.Version, in.State)
		}
	}
	if body := get(t, url); body == "" {
		t.Error("the upgraded role does not answer through the load balancer")
	}
	checkDrives("after the upgrade")

	// Drained off its node, an instance stops and its slot starts on
	// the other node, on its drive.
	drained := c.instances("vweb")[0].Node
	c.mustWeft("node", "drain", drained)
	c.waitFor("the VMs off the drained node", 3*time.Minute, func() bool {
		ins := c.instances("vweb")
		for _, in := range ins {
			if in.Node == drained || in.State != api.StateRunning || in.Health != api.HealthHealthy {
				return false
			}
		}
		return len(ins) == 2
	})
	checkDrives("after the drain")
	c.mustWeft("node", "undrain", drained)

	// An agent killed and started again serves its VMs' drives anew:
	// QEMU reconnects, and the VM goes on without a restart.
	in = c.instances("vweb")[0]
	uptime := func() float64 {
		var u float64
		fmt.Sscan(c.mustWeft("exec", in.ID, "--", "cat", "/proc/uptime"), &u)
		return u
	}
	before := uptime()
	c.kill9(c.agents[in.Node])
	c.startAgent(in.Node)
	c.waitFor("the restarted agent writing through to the VM's drive", 2*time.Minute, func() bool {
		_, _, code := c.weft("exec", in.ID, "--", "/bin/sh", "-c", "echo again | dd of=/data/mark conv=fsync")
		return code == 0
	})
	if got := strings.TrimSpace(c.mustWeft("exec", in.ID, "--", "cat", "/data/mark")); got != "again" {
		t.Errorf("after its agent restarted, the VM's drive reads %q", got)
	}
	if after := uptime(); after < before {
		t.Errorf("the VM restarted with its agent: uptime %.1fs, then %.1fs", before, after)
	}
	if now := c.instances("vweb"); !slices.ContainsFunc(now, func(i api.Instance) bool { return i.ID == in.ID && i.State == api.StateRunning }) {
		t.Errorf("after its agent restarted, instance %s is not running: %+v", in.ID, now)
	}

	c.mustWeft("scale", "vweb", "web", "1")
	c.waitFor("one VM left", 2*time.Minute, func() bool { return len(c.instances("vweb")) == 1 })
	c.mustWeft("scale", "vweb", "web", "2", "--wait", "--timeout", "3m")
	checkDrives("after scaling 2 -> 1 -> 2")
}

// TestPersistentVMSurvivesHostLoss writes and syncs a file in a persistent
// VM and on a data disk attached to it, kills its node's agent and QEMU
// with SIGKILL and resizes the VM meanwhile, and finds both in the VM the
// fabric starts on another node from the same disks, with the new size.
// The data disk is then detached (the OS disk cannot be). Four boots: the
// move and the resize share one (a QEMU started under emulation costs
// seconds of CPU, many more on a loaded machine).
func TestPersistentVMSurvivesHostLoss(t *testing.T) {
	vmTest(t)
	c := newCluster(t, 2, storageFlags(t)...)
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait")
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo precious > /root/data && sync")
	c.mustWeft("vm", "attach-disk", "keeper", "--size", "64Mi", "--wait")
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo hello | dd of=/dev/vdb conv=fsync")
	vm := c.vm("keeper")
	first := vm.Node

	// The host dies: its agent and the VM's QEMU, both with SIGKILL; the
	// VM is resized meanwhile. (Resized only after the node was declared
	// down, on a slow machine, it moves and then restarts: two boots, the
	// same checks.)
	qemu := qemuOf(t, vm.Instance)
	c.kill9(c.agents[first])
	syscall.Kill(qemu, syscall.SIGKILL)
	c.mustWeft("vm", "resize", "keeper", "--memory", "384Mi")
	ctx := context.Background()
	c.waitFor("the VM running on the other node at its new size", 2*time.Minute, func() bool {
		v := c.vm("keeper")
		if v.Node == "" || v.Node == first || v.State != api.StateRunning {
			return false
		}
		in, err := c.client.Instance(ctx, v.Instance)
		svc, err2 := c.client.Service(ctx, "keeper")
		return err == nil && err2 == nil && in.Version == svc.Version
	})
	out := c.mustWeft("vm", "exec", "keeper", "--", "cat", "/root/data")
	if strings.TrimSpace(out) != "precious" {
		t.Errorf("the file the VM synced before its host died reads %q", out)
	}
	var memKB int
	fmt.Sscan(c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2"), &memKB)
	if memKB < 300<<10 {
		t.Errorf("after resizing to 384Mi the guest has %d KiB", memKB)
	}
	if got := c.mustWeft("vm", "exec", "keeper", "--", "dd", "if=/dev/vdb", "bs=5", "count=1"); got != "hello" {
		t.Errorf("the data disk after the host loss and the resize starts with %q", got)
	}

	c.startAgent(first)
	if _, errOut, code := c.weft("vm", "detach-disk", "keeper", "os"); code == 0 || !strings.Contains(errOut, "OS disk") {
		t.Errorf("detaching the OS disk: exit %d, %q", code, errOut)
	}
	c.mustWeft("vm", "detach-disk", "keeper", "data1", "--wait")
	if _, _, code := c.weft("vm", "exec", "keeper", "--", "test", "-b", "/dev/vdb"); code == 0 {
		t.Error("the detached disk is still in the guest")
	}
	if vm := c.vm("keeper"); len(vm.Disks) != 1 || strings.TrimSpace(c.mustWeft("vm", "exec", "keeper", "--", "cat", "/root/data")) != "precious" {
		t.Errorf("after the detach: disks %+v", vm.Disks)
	}
}

func (c *cluster) vm(name string) api.VM {
	c.t.Helper()
	var vm api.VM
	if err := json.Unmarshal([]byte(c.mustWeft("vm", "show", name, "-o", "json")), &vm); err != nil {
		c.t.Fatal(err)
	}
	return vm
}

// qemuOf finds the QEMU process of an instance: its command line names the
// instance's folder.
func qemuOf(t testing.TB, instance string) int {
	t.Helper()
	pids := qemusOf(instance)
	if len(pids) == 0 {
		t.Fatalf("no QEMU process for instance %s", instance)
	}
	return pids[0]
}

// qemusOf lists the live QEMU processes whose command line contains s: an
// instance ID, or a cluster's folder for all of its VMs (other tests on the
// machine may run VMs of the same names).
func qemusOf(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), "qemu-system") && !strings.Contains(string(cmdline), "/qemu-system") {
			continue
		}
		var pid int
		fmt.Sscan(e.Name(), &pid)
		if strings.Contains(string(cmdline), s) && syscallAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// vmLiveMigration moves the running persistent VM name to the other node
// with weft vm migrate: a counter the guest runs keeps counting across the
// move, and its uptime goes on. A drain then moves it back the same way.
func vmLiveMigration(t *testing.T, c *cluster, name string) {
	first := c.vm(name).Node
	// Renamed into place: a read between the truncation and the write of
	// echo's redirection would see no count.
	c.mustWeft("vm", "exec", name, "--", "/bin/sh", "-c",
		"i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.05; done > /dev/null 2>&1 &")
	count := func() int {
		var n int
		fmt.Sscan(c.mustWeft("vm", "exec", name, "--", "cat", "/tmp/count"), &n)
		return n
	}
	uptime := func() float64 {
		var u float64
		fmt.Sscan(c.mustWeft("vm", "exec", name, "--", "cat", "/proc/uptime"), &u)
		return u
	}
	time.Sleep(300 * time.Millisecond)
	before, upBefore := count(), uptime()

	out := c.mustWeft("vm", "migrate", name)
	t.Logf("%s", strings.TrimSpace(out))
	vm := c.vm(name)
	if vm.Node == first || vm.LastMigration == nil || vm.LastMigration.Error != "" {
		t.Fatalf("after the migration the VM is on %s (was %s), last migration %+v", vm.Node, first, vm.LastMigration)
	}
	time.Sleep(300 * time.Millisecond)
	if after, upAfter := count(), uptime(); after <= before || upAfter <= upBefore {
		t.Errorf("the guest restarted: counter %d then %d, uptime %.1fs then %.1fs", before, after, upBefore, upAfter)
	}

	// Draining its node moves it back live, not by a restart.
	second := vm.Node
	before = count()
	c.mustWeft("node", "drain", second)
	c.waitFor("the VM migrated off the drained node", 2*time.Minute, func() bool {
		v := c.vm(name)
		return v.Node == first && v.Migration == nil && v.State == api.StateRunning
	})
	if after := count(); after <= before {
		t.Errorf("the drain restarted the guest: counter %d then %d", before, after)
	}
	if _, errOut, code := c.weft("vm", "migrate", name, "--to", second); code == 0 || !strings.Contains(errOut, second) {
		t.Errorf("migrating to a draining node: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.weft("vm", "migrate", name, "--to", "node-9"); code == 0 || !strings.Contains(errOut, "no node node-9") {
		t.Errorf("migrating to an unknown node: exit %d, %q", code, errOut)
	}
}

// TestBootloaderImage imports a raw disk that boots with its own
// bootloader (no --kernel) and runs it as a VM role: the node boots it as
// a PC, and what its boot code writes to the serial port is in the logs.
func TestBootloaderImage(t *testing.T) {
	vmTest(t)
	c := newCluster(t, 1, storageFlags(t)...)
	disk := make([]byte, 1<<20)
	boot := []byte{0xFC, 0x31, 0xC0, 0x8E, 0xD8, 0xBE, 0x17, 0x7C, 0xAC, 0x08, 0xC0, 0x74, 0x06,
		0xBA, 0xF8, 0x03, 0xEE, 0xEB, 0xF5, 0xFA, 0xF4, 0xEB, 0xFD} // print the string at 0x7c17 on COM1, halt
	copy(disk, append(boot, "booted by its own bootloader\r\n\x00"...))
	disk[510], disk[511] = 0x55, 0xAA
	path := filepath.Join(c.dir, "mbr.raw")
	if err := os.WriteFile(path, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustWeft("image", "import", "mbr", path)
	var img api.Image
	json.Unmarshal([]byte(c.mustWeft("image", "show", "mbr", "-o", "json")), &img)
	if img.Type != api.ImageVM || len(img.Files) != 1 {
		t.Fatalf("imported bootloader disk: %+v", img)
	}
	model := writeFile(t, filepath.Join(c.dir, "mbr.yaml"), `name: legacy
roles:
  - name: box
    kind: vm
    runtime: vm
    image: mbr
    instances: 1
    size: {cpu: 1, memory: 64Mi}
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "2m")
	in := c.instances("legacy")[0]
	c.waitFor("the boot code's line in the logs", 30*time.Second, func() bool {
		out, _, _ := c.weft("logs", in.ID)
		return strings.Contains(out, "booted by its own bootloader")
	})
}
