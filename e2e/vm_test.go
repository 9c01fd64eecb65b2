package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// fakeVMImage imports a VM image whose files are not bootable: enough for
// the control plane (disks, placement, refusals) without QEMU.
func (c *cluster) fakeVMImage(name string, diskSize int) {
	c.t.Helper()
	dir := filepath.Join(c.dir, "vmimg-"+name)
	os.MkdirAll(dir, 0o755)
	disk := make([]byte, diskSize)
	rand.Read(disk[:4096])
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), disk, 0o644); err != nil {
		c.t.Fatal(err)
	}
	writeFile(c.t, filepath.Join(dir, "vmlinux"), "not really a kernel")
	c.mustWeft("image", "import", name, filepath.Join(dir, "disk.raw"), "--kernel", filepath.Join(dir, "vmlinux"))
}

// TestVMControlPlane creates persistent VMs through the CLI and refuses the
// bad requests an IaaS user makes, naming what is wrong.
func TestVMControlPlane(t *testing.T) {
	parallel(t)
	c := newCluster(t, 0, storageFlags(t)...)
	c.fakeVMImage("tiny", 4<<20)
	var img api.Image
	json.Unmarshal([]byte(c.mustWeft("image", "show", "tiny", "-o", "json")), &img)
	if img.Type != api.ImageVM || img.VM == nil || img.VM.DiskSize != 4<<20 || img.VM.DiskFormat != "raw" {
		t.Fatalf("imported VM image: %+v", img)
	}

	c.mustWeft("network", "create", "net", "--cidr", "10.20.0.0/24")
	out := c.mustWeft("vm", "create", "db", "--image", "tiny", "--memory", "256Mi", "--disk", "16Mi",
		"--data-disk", "8Mi", "--port", "ssh:22:2222", "-o", "json")
	var vm api.VM
	if err := json.Unmarshal([]byte(out), &vm); err != nil {
		t.Fatalf("vm create -o json: %v\n%s", err, out)
	}
	if len(vm.Disks) != 2 || vm.Disks[0].Size != 16<<20 || vm.Disks[1].Name != "data1" || len(vm.Ports) != 1 || vm.Ports[0].GuestPort != 22 {
		t.Errorf("created VM: %+v", vm)
	}
	svc, err := c.client.Service(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if r := svc.Spec.Roles[0]; r.Persistence != api.Persistent || r.Runtime != api.RuntimeVM || r.Instances != 1 {
		t.Errorf("the VM's role: %+v", r)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vm", "create", "db", "--image", "tiny"}, "exists"},
		{[]string{"vm", "create", "x", "--image", "nope"}, "no image named nope"},
		{[]string{"vm", "create", "x", "--image", "tiny", "--disk", "1Mi"}, "smaller than image tiny"},
		{[]string{"vm", "create", "x", "--image", "tiny", "--port", "ssh:22"}, "NAME:GUESTPORT:PUBLICPORT"},
		{[]string{"vm", "create", "x", "--image", "tiny", "--port", "ssh:22:2222"}, "2222"}, // db publishes it
		{[]string{"vm", "create", "x"}, "--image"},
		// Imported without Weft's guest agent: nothing would apply its private address.
		{[]string{"vm", "create", "x", "--image", "tiny", "--network", "net"}, "network: image tiny has no guest agent"},
	} {
		_, errOut, code := c.weft(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("weft %s: exit %d, %q; want an error about %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	var vms []api.VM
	json.Unmarshal([]byte(c.mustWeft("vm", "list", "-o", "json")), &vms)
	if len(vms) != 1 {
		t.Errorf("VMs after refused creates: %+v", vms)
	}
	if _, errOut, code := c.weft("image", "delete", "tiny"); code == 0 || !strings.Contains(errOut, "in use by db/vm") {
		t.Errorf("deleting the image of a VM: exit %d, %q", code, errOut)
	}
	c.mustWeft("vm", "stop", "db")
	vm, _ = c.client.VM(t.Context(), "db")
	if vm.Running {
		t.Error("a stopped VM still wants to run")
	}
	c.mustWeft("vm", "delete", "db")
	c.waitFor("the deleted VM gone", 10*time.Second, func() bool {
		_, err := c.client.VM(t.Context(), "db")
		return err != nil
	})
}
