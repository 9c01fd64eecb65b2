package qemu

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
)

func TestCmdline(t *testing.T) {
	tests := []struct {
		name  string
		image string
		disks int
		want  string
	}{
		{"empty", "", 1, "console=ttyS0 root=/dev/vda rw tsc_early_khz=2596146 weft.hostname=vm1"},
		{"image settings win", "console=hvc0 root=/dev/vdb ro quiet", 1,
			"console=hvc0 root=/dev/vdb ro quiet tsc_early_khz=2596146 weft.hostname=vm1"},
		{"the host's TSC wins", "quiet tsc_early_khz=2000 panic=-1", 1,
			"quiet panic=-1 console=ttyS0 root=/dev/vda rw tsc_early_khz=2596146 weft.hostname=vm1"},
		{"no disk", "quiet", 0, "quiet console=ttyS0 tsc_early_khz=2596146 weft.hostname=vm1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := boot{Cmdline: tc.image, Hostname: "vm1", TSCKHz: 2596146, Disks: make([]disk, tc.disks)}
			if got := b.cmdline(); got != tc.want {
				t.Errorf("cmdline\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	b := boot{
		QEMU: "qemu", Machine: machine{kvm: false}, Kernel: "/img/kernel", Initrd: "/img/initrd",
		Hostname: "vm1", CPUs: 2, MemoryMB: 256,
		Disks: []disk{
			overlayDisk("os", "/inst,1/os.qcow2"),
			nbdDisk("disk1", driver.Disk{Socket: "/run/nbd.sock", Export: "data,1"}),
			driveDisk(0, driver.Disk{Socket: "/run/drive.sock", Export: "data"}),
		},
		HostFwd:   []string{"tcp:0.0.0.0:8080-:80"},
		QMPSocket: "/inst,1/qmp.sock", AgentSocket: "/inst,1/agent.sock",
		Incoming: true,
	}
	args := b.args()
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-M microvm", "-accel tcg", "-cpu max", "-smp 2", "-m 262152k", "-no-reboot",
		"-kernel /img/kernel", "-initrd /img/initrd",
		"-qmp unix:/inst,,1/qmp.sock,server=on,wait=off",
		"-chardev socket,id=agent,path=/inst,,1/agent.sock,server=on,wait=off",
		"virtserialport,bus=serial0.0,nr=1,chardev=agent,name=" + guest.PortName,
		"-netdev user,id=net0,hostfwd=tcp:0.0.0.0:8080-:80",
		"-drive if=none,id=os,format=qcow2,discard=unmap,file=/inst,,1/os.qcow2",
		"-device virtio-blk-device,drive=os,id=vda", "-device virtio-blk-device,drive=disk1,id=vdb",
		"-device virtio-blk-device,drive=drive0,id=vdc,serial=weft-drive-0",
		"-incoming defer",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, joined)
		}
	}
	// Block devices are JSON, so paths and export names need no escaping.
	var nodes []map[string]any
	for i, a := range args {
		if a == "-blockdev" {
			var n map[string]any
			if err := json.Unmarshal([]byte(args[i+1]), &n); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
		}
	}
	want := []map[string]any{
		{"driver": "raw", "node-name": "disk1", "discard": "unmap",
			"file": map[string]any{"driver": "nbd", "export": "data,1", "reconnect-delay": float64(reconnectDelay),
				"server": map[string]any{"type": "unix", "path": "/run/nbd.sock"}}},
		{"driver": "raw", "node-name": "drive0", "discard": "unmap",
			"file": map[string]any{"driver": "nbd", "export": "data", "reconnect-delay": float64(reconnectDelay),
				"server": map[string]any{"type": "unix", "path": "/run/drive.sock"}}},
	}
	if diff := cmp.Diff(want, nodes); diff != "" {
		t.Errorf("block devices (-want +got):\n%s", diff)
	}
	if kvm := (machine{kvm: true}).args(); !slices.Contains(kvm, "-enable-kvm") || !slices.Contains(kvm, "host") {
		t.Errorf("KVM machine args %q", kvm)
	}
	if m := (machine{kvm: true}).memory(256); m != "256" {
		t.Errorf("KVM guest memory %q, want 256 (MiB)", m)
	}
}

func TestResources(t *testing.T) {
	for _, tc := range []struct {
		cores float64
		want  int
	}{{0, 1}, {0.25, 1}, {1, 1}, {1.5, 2}, {4, 4}} {
		if got := cpus(tc.cores); got != tc.want {
			t.Errorf("cpus(%v) = %d, want %d", tc.cores, got, tc.want)
		}
	}
	for _, tc := range []struct {
		bytes int64
		want  int
	}{{0, 256}, {512 << 20, 512}, {100<<20 + 1, 101}} {
		if got := memoryMB(tc.bytes); got != tc.want {
			t.Errorf("memoryMB(%d) = %d, want %d", tc.bytes, got, tc.want)
		}
	}
}

func TestHostForwards(t *testing.T) {
	spec := driver.Spec{
		Ports:      map[string]int{"web": 18080, "admin": 18081, "db": 15432},
		GuestPorts: map[string]int{"web": 80, "db": 0},
	}
	want := []string{"tcp:0.0.0.0:18081-:18081", "tcp:0.0.0.0:15432-:15432", "tcp:0.0.0.0:18080-:80"}
	if diff := cmp.Diff(want, hostForwards(spec)); diff != "" {
		t.Errorf("forwards (-want +got):\n%s", diff)
	}
}

func TestSocketDir(t *testing.T) {
	short := "/var/lib/weft/instances/web-0"
	if got := socketDir("web-0", short); got != short {
		t.Errorf("socket dir for a short path: %s", got)
	}
	long := "/var/lib/weft/instances/" + strings.Repeat("x", 100)
	got := socketDir("web-0", long)
	if got == long || len(got+"/"+agentSocketName) > maxSocketPath {
		t.Errorf("socket dir for a long path: %s", got)
	}
	if again := socketDir("web-0", long); again != got {
		t.Errorf("socket dir not stable: %s, then %s", got, again)
	}
	if other := socketDir("web-1", long); other == got {
		t.Errorf("two instances share the socket dir %s", got)
	}
}

func TestWorkloadExit(t *testing.T) {
	tests := []struct {
		st     guest.WorkloadStatus
		exited bool
		code   int
	}{
		{guest.WorkloadStatus{}, false, 0}, // no workload
		{guest.WorkloadStatus{Running: true, PID: 7}, false, 0},
		{guest.WorkloadStatus{LastExit: "exited with code 3"}, true, 3},
		{guest.WorkloadStatus{LastExit: "killed by signal 9"}, true, 137},
		// Restarted by the guest agent between two looks: it did exit.
		{guest.WorkloadStatus{Running: true, Restarts: 1, LastExit: "exited with code 0"}, true, 0},
		{guest.WorkloadStatus{LastExit: "start: exec: \"nope\": not found"}, true, 1},
	}
	for _, tc := range tests {
		rec, exited := workloadExit(tc.st)
		if exited != tc.exited || rec.Code != tc.code || (exited && rec.Reason != tc.st.LastExit) {
			t.Errorf("workloadExit(%+v) = %+v, %v; want code %d, %v", tc.st, rec, exited, tc.code, tc.exited)
		}
	}
}
