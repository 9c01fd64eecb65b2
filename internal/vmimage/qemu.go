package vmimage

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DefaultQEMU is the QEMU binary QEMUCommand runs when BootOptions.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

// BootOptions describe one VM for QEMUCommand.
type BootOptions struct {
	QEMU       string // binary (default DefaultQEMU)
	Kernel     string // vmlinux (or bzImage)
	Initrd     string // optional
	Cmdline    string
	Disk       string // the root disk, /dev/vda in the guest
	DiskFormat string // "raw" (default) or "qcow2" (e.g. an overlay over the image's disk)
	MemoryMB   int    // default 256
	CPUs       int    // default 1

	AgentSocket string // unix socket QEMU listens on for the guest agent's port (guest.PortName)
	ConsoleLog  string // file receiving the serial console, appended to; "" discards it
	QMPSocket   string // unix socket QEMU listens on for QMP; "" for none

	// HostFwd are user-mode networking forwards, "tcp::HOSTPORT-:GUESTPORT"
	// (QEMU's hostfwd syntax, also "tcp:127.0.0.1:8080-:80" or "udp::...").
	HostFwd []string
	// NoNetwork leaves out the network device.
	NoNetwork bool

	// KVM uses /dev/kvm (see KVMAvailable); otherwise QEMU emulates (TCG).
	KVM bool
	// NoReboot makes a guest reboot (and a panic, with panic=-1) exit QEMU.
	NoReboot bool
}

// KVMAvailable reports whether /dev/kvm can be opened for reading and writing.
func KVMAvailable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// HostTSCkHz is the host's TSC frequency in kHz, which is also the TSC
// frequency of a TCG guest (QEMU's TCG reads the host's TSC): from
// /sys/devices/system/cpu/cpu0/tsc_freq_khz where the kernel has it, else
// /proc/cpuinfo's "cpu MHz" (the TSC's rate on hosts with a constant TSC,
// and on virtual machines), else 2 GHz.
func HostTSCkHz() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if k, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && k > 0 {
			return k
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok || strings.TrimSpace(k) != "cpu MHz" {
				continue
			}
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && mhz > 0 {
				return int(mhz * 1000)
			}
			break
		}
	}
	return 2_000_000
}

// QEMUCommand returns the argv (binary first) that boots o on QEMU's
// microvm machine: no firmware, no PCI, virtio over MMIO, direct kernel
// boot. Without KVM it appends tsc_early_khz=HostTSCkHz() to the command
// line unless it is there: microvm has no PIT or HPET to calibrate the TSC
// with, and without it the kernel hangs about half the time; a wrong value
// makes the guest's clock run at the wrong speed. Devices: the disk (virtio-blk), a virtio-net NIC on user-mode
// networking, a virtio-serial port for the guest agent, a virtio-rng, the
// serial console to a file, and QMP on a unix socket.
func QEMUCommand(o BootOptions) []string {
	bin := o.QEMU
	if bin == "" {
		bin = DefaultQEMU
	}
	mem := o.MemoryMB
	if mem <= 0 {
		mem = 256
	}
	cpus := o.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	format := o.DiskFormat
	if format == "" {
		format = "raw"
	}
	args := []string{bin,
		"-M", "microvm,pit=off,pic=off,isa-serial=on,rtc=on",
		"-nodefaults", "-no-user-config", "-nographic",
		"-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
	}
	if o.KVM {
		args = append(args, "-enable-kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	if o.NoReboot {
		args = append(args, "-no-reboot")
	}
	args = append(args, "-kernel", o.Kernel)
	if o.Initrd != "" {
		args = append(args, "-initrd", o.Initrd)
	}
	cmdline := o.Cmdline
	if !o.KVM && !strings.Contains(cmdline, "tsc_early_khz=") {
		cmdline = strings.TrimSpace(cmdline + " tsc_early_khz=" + strconv.Itoa(HostTSCkHz()))
	}
	if cmdline != "" {
		args = append(args, "-append", cmdline)
	}
	if o.ConsoleLog != "" {
		args = append(args, "-chardev", "file,id=con0,path="+qemuOpt(o.ConsoleLog)+",append=on", "-serial", "chardev:con0")
	} else {
		args = append(args, "-serial", "null")
	}
	if o.Disk != "" {
		args = append(args,
			"-drive", "id=disk0,if=none,file="+qemuOpt(o.Disk)+",format="+format+",cache=writeback,aio=threads,discard=unmap",
			"-device", "virtio-blk-device,drive=disk0")
	}
	if !o.NoNetwork {
		netdev := "user,id=net0"
		for _, f := range o.HostFwd {
			netdev += ",hostfwd=" + qemuOpt(f)
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-device,netdev=net0")
	}
	if o.AgentSocket != "" {
		args = append(args,
			"-chardev", "socket,id=agent,path="+qemuOpt(o.AgentSocket)+",server=on,wait=off",
			"-device", "virtio-serial-device,max_ports=2",
			"-device", "virtserialport,chardev=agent,name=weft.agent")
	}
	args = append(args,
		"-object", "rng-random,id=rng0,filename=/dev/urandom",
		"-device", "virtio-rng-device,rng=rng0")
	if o.QMPSocket != "" {
		args = append(args, "-qmp", "unix:"+qemuOpt(o.QMPSocket)+",server=on,wait=off")
	}
	return args
}

// qemuOpt escapes a value inside a QEMU option list, where a comma is written twice.
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
