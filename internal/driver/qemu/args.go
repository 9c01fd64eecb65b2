package qemu

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
	"github.com/weftcloud/weft/internal/sockdir"
)

// Defaults for a VM whose spec does not say.
const (
	defaultMemoryMB = 256
	// defaultTSCKHz is the TSC frequency assumed when the host's is unknown.
	defaultTSCKHz = 2000000
)

// hostTSCKHz is the host's TSC frequency in kHz, which the guest's TSC
// runs at too, under KVM and TCG alike. microvm guests get it as
// tsc_early_khz=: without it their early TSC calibration (there is no PIT
// to calibrate against) hangs about half the time, and with a wrong value
// their clock runs too fast or too slow.
var hostTSCKHz = sync.OnceValue(func() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return defaultTSCKHz
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && mhz > 0 {
				return int(mhz * 1000)
			}
		}
	}
	return defaultTSCKHz
})

// machine is the virtual hardware: microvm, the smallest and fastest to
// boot, with its devices on virtio-mmio.
type machine struct {
	kvm bool
	cpu string // the CPU model under KVM (see probeKVM)
	// bios boots a PC from the disk's bootloader (images without a kernel),
	// with its devices on PCI.
	bios bool
}

func (m machine) args() []string {
	// No legacy timer or interrupt controllers: the guest uses the local
	// APIC and the TSC, and boots faster without probing them.
	args := []string{"-M", "microvm,pit=off,pic=off,isa-serial=on,rtc=on"}
	if m.bios {
		args = []string{"-M", "pc"}
	}
	if m.kvm {
		return append(args, "-enable-kvm", "-cpu", cmp.Or(m.cpu, "host"))
	}
	// max exposes every feature TCG emulates; the guest kernel then picks
	// its fastest code paths.
	return append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
}

// tcgRAMPadKiB is added to the memory of a guest under TCG, so that the
// size of its RAM is not a multiple of 256 KiB (64 pages).
//
// During a live migration QEMU syncs the dirty page bitmap of each RAM
// block once per pass and sends the pages found dirty. QEMU 7.2 (Debian
// 12's), for a block whose size is a multiple of 64 pages, clears the
// bitmap a word at a time without resetting the TLB entries TCG keeps for
// those pages: a page the vCPU has written since the previous pass stays
// writable in its TLB as an already dirty page, so the vCPU's next writes
// to it bypass the dirty tracking, the page is never sent again, and the
// destination resumes with an older copy of it. Kernel stacks, written all
// the time through long-lived TLB entries, are the usual victims: "Kernel
// panic - not syncing: stack-protector: Kernel stack is corrupted" right
// after a migration. For any other block QEMU clears the bitmap page by
// page and resets the TLB entries of each page it clears (as newer QEMUs
// do for all blocks), so the vCPU's next write marks the page dirty again.
// Two extra pages make every VM's RAM such a block. KVM tracks dirty pages
// itself and needs none of this. Source and destination compute the same
// size, as a migration requires.
const tcgRAMPadKiB = 8

// memory is the -m value for a guest of mb MiB.
func (m machine) memory(mb int) string {
	if m.kvm {
		return strconv.Itoa(mb)
	}
	return strconv.Itoa(mb<<10+tcgRAMPadKiB) + "k"
}

// device names a virtio device for the machine's bus: virtio-blk-device
// on microvm, virtio-blk-pci on a PC.
func (m machine) device(kind string) string {
	if m.bios {
		return kind + "-pci"
	}
	return kind + "-device"
}

// disk is one virtual disk: a -blockdev node (as QEMU's JSON), or a
// -drive, and its device.
type disk struct {
	node  map[string]any // -blockdev
	drive string         // -drive, with if=none and id= the node's name
	name  string
	// serial is the device's serial, by which the guest finds a drive
	// (guest.Client.Mount); at most 20 characters.
	serial string
}

// overlayDisk is a qcow2 file in the instance's directory. It is a -drive
// rather than a -blockdev: block migration (MigrateTo) finds disks by the
// name only -drive gives them.
func overlayDisk(name, path string) disk {
	return disk{name: name, drive: "if=none,id=" + name + ",format=qcow2,discard=unmap,file=" + escape(path)}
}

// nbdDisk is a disk the node agent serves over NBD on a unix socket. QEMU
// reconnects for reconnectDelay seconds when the agent restarts, holding
// the guest's requests meanwhile instead of failing them.
func nbdDisk(name string, d driver.Disk) disk {
	return disk{name: name, node: map[string]any{
		"driver": "raw", "node-name": name, "discard": "unmap",
		"file": map[string]any{
			"driver":          "nbd",
			"server":          map[string]any{"type": "unix", "path": d.Socket},
			"export":          d.Export,
			"reconnect-delay": reconnectDelay,
		},
	}}
}

// driveDisk is drive i of the instance: an NBD disk like a persistent
// VM's, with a serial the guest finds it by.
func driveDisk(i int, d driver.Disk) disk {
	dk := nbdDisk(fmt.Sprintf("drive%d", i), d)
	dk.serial = driveSerial(i)
	return dk
}

// driveSerial is the serial of drive i: a drive's name may be longer
// than the 20 characters virtio-blk keeps.
func driveSerial(i int) string { return fmt.Sprintf("weft-drive-%d", i) }

// reconnectDelay is how long, in seconds, QEMU retries a lost NBD server
// before failing the guest's I/O: longer than an agent restart.
const reconnectDelay = 30

// boot is everything the QEMU command line is made from.
type boot struct {
	QEMU        string
	Machine     machine
	Kernel      string
	Initrd      string // optional
	Cmdline     string // the image's; the runtime adds console and root
	Hostname    string
	TSCKHz      int    // the host's TSC frequency
	Disks       []disk // OS disk first
	CPUs        int
	MemoryMB    int
	HostFwd     []string    // user-mode networking "tcp:0.0.0.0:HOST-:GUEST" rules
	NIC         *driver.NIC // the virtual network's interface (nic.go), or nil
	QMPSocket   string
	AgentSocket string
	Incoming    bool // wait for a migration (-incoming defer)
}

// args is the QEMU command line.
func (b boot) args() []string {
	a := []string{b.QEMU, "-name", "weft-" + b.Hostname}
	a = append(a, b.Machine.args()...)
	a = append(a,
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest that reboots (or panics, with panic=-1) ends, like a
		// process that exits: the agent decides what runs next.
		"-no-reboot",
		"-smp", strconv.Itoa(b.CPUs), "-m", b.Machine.memory(b.MemoryMB),
		// The serial console is QEMU's stdout: the shim's log, so Logs
		// shows the boot and the workload's output. signal=off: a ^C
		// typed in the guest is not a signal to QEMU.
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
		"-qmp", "unix:"+escape(b.QMPSocket)+",server=on,wait=off",
	)
	if b.Kernel != "" {
		a = append(a, "-kernel", b.Kernel, "-append", b.cmdline())
	}
	if b.Initrd != "" && b.Kernel != "" {
		a = append(a, "-initrd", b.Initrd)
	}
	for i, d := range b.Disks {
		if d.drive != "" {
			a = append(a, "-drive", d.drive)
		} else {
			node, _ := json.Marshal(d.node)
			a = append(a, "-blockdev", string(node))
		}
		dev := fmt.Sprintf("%s,drive=%s,id=%s", b.Machine.device("virtio-blk"), d.name, diskDevice(i))
		if b.Machine.bios && i == 0 {
			dev += ",bootindex=0"
		}
		if d.serial != "" {
			dev += ",serial=" + escape(d.serial)
		}
		a = append(a, "-device", dev)
	}
	netdev := "user,id=net0"
	for _, f := range b.HostFwd {
		netdev += ",hostfwd=" + f
	}
	a = append(a, "-netdev", netdev, "-device", b.Machine.device("virtio-net")+",netdev=net0")
	if b.NIC != nil {
		a = append(a, nicArgs(b.Machine, b.NIC)...)
	}
	a = append(a,
		"-chardev", "socket,id=agent,path="+escape(b.AgentSocket)+",server=on,wait=off",
		"-device", b.Machine.device("virtio-serial")+",id="+agentSerialID,
		"-device", "virtserialport,bus="+agentSerialID+".0,nr=1,chardev=agent,name="+guest.PortName,
	)
	// Entropy from the host: the guest's getrandom would otherwise block
	// at boot for want of it.
	a = append(a, "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", b.Machine.device("virtio-rng")+",rng=rng0")
	if b.Incoming {
		a = append(a, "-incoming", "defer")
	}
	return a
}

func diskDevice(i int) string { return "vd" + string(rune('a'+i)) }

// cmdline is the image's kernel command line with the runtime's settings:
// the console on the serial port (the kernel's messages and what the guest
// writes to /dev/console reach the instance's log), the OS disk as root,
// the host's TSC frequency and the instance's hostname for the guest agent.
func (b boot) cmdline() string {
	words := strings.Fields(b.Cmdline)
	has := func(key string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return w == key || strings.HasPrefix(w, key+"=") })
	}
	add := func(key, value string) {
		if !has(key) {
			words = append(words, key+"="+value)
		}
	}
	add("console", "ttyS0")
	if len(b.Disks) > 0 {
		add("root", "/dev/vda")
		if !has("ro") && !has("rw") {
			words = append(words, "rw")
		}
	}
	// The host's TSC frequency, whatever the image says: only the node knows it.
	words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "tsc_early_khz=") })
	add("tsc_early_khz", strconv.Itoa(b.TSCKHz))
	if b.Hostname != "" {
		add("weft.hostname", b.Hostname)
	}
	// The virtual network's settings are the node's alone (nic.go).
	words = append(withoutNICWords(words), nicWords(b.NIC)...)
	return strings.Join(words, " ")
}

// escape doubles commas, QEMU's way of putting one in an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// cpus is the number of virtual CPUs for a CPU allowance in cores: rounded
// up, at least one.
func cpus(cores float64) int {
	return max(1, int(math.Ceil(cores)))
}

// memoryMB is the guest's memory for a limit in bytes, rounded up to MiB.
func memoryMB(bytes int64) int {
	if bytes <= 0 {
		return defaultMemoryMB
	}
	return int((bytes + 1<<20 - 1) >> 20)
}

// hostForwards are the user-mode networking rules for spec's endpoints, in
// endpoint name order: the host port on every address to the guest port.
func hostForwards(spec driver.Spec) []string {
	names := make([]string, 0, len(spec.Ports))
	for name := range spec.Ports {
		names = append(names, name)
	}
	slices.Sort(names)
	var rules []string
	for _, name := range names {
		host := spec.Ports[name]
		guestPort := host
		if p, ok := spec.GuestPorts[name]; ok && p > 0 {
			guestPort = p
		}
		rules = append(rules, fmt.Sprintf("tcp:0.0.0.0:%d-:%d", host, guestPort))
	}
	return rules
}

// kvmUsable reports whether this process may run KVM guests.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// maxSocketPath is the longest path a unix socket may have.
const maxSocketPath = sockdir.MaxPath

// socketDir is where an instance's sockets go: its own directory, or when
// that path is too long for a socket, a directory named by a hash of the
// instance under the system's temporary directory.
func socketDir(id, dir string) string {
	return sockdir.For(dir, agentSocketName, "vm\x00"+id+"\x00"+dir)
}
