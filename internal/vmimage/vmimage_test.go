package vmimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readCPIO parses a newc archive: name to mode, data and rdev.
type cpioEntry struct {
	mode         uint32
	data         []byte
	rmaj, rminor int
}

func readCPIO(t *testing.T, b []byte) (map[string]cpioEntry, []string) {
	t.Helper()
	out := map[string]cpioEntry{}
	var order []string
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := align(off + 110 + namesize)
		data := b[dataOff : dataOff+size]
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out, order
		}
		out[name] = cpioEntry{uint32(mode), data, rmaj, rmin}
		order = append(order, name)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("bin", 0o755)
	c.File("/bin/busybox", 0o755, []byte("abcde"))
	c.Symlink("bin/sh", "busybox")
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, []byte("#!/bin/sh\n"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	got, order := readCPIO(t, buf.Bytes())
	want := map[string]cpioEntry{
		"bin":         {mode: cpioDir | 0o755},
		"bin/busybox": {mode: cpioRegular | 0o755, data: []byte("abcde")},
		"bin/sh":      {mode: cpioSymlink | 0o777, data: []byte("busybox")},
		"dev/console": {mode: cpioCharDev | 0o600, rmaj: 5, rminor: 1},
		"init":        {mode: cpioRegular | 0o755, data: []byte("#!/bin/sh\n")},
	}
	if !slices.Equal(order, []string{"bin", "bin/busybox", "bin/sh", "dev/console", "init"}) {
		t.Errorf("order = %v", order)
	}
	for name, w := range want {
		g := got[name]
		if g.mode != w.mode || !bytes.Equal(g.data, w.data) || g.rmaj != w.rmaj || g.rminor != w.rminor {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}
	// cpio(1), when installed, agrees.
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil || strings.Fields(string(out))[1] != "bin/busybox" {
			t.Errorf("cpio -t: %v %q", err, out)
		}
	}
}

func TestInitrdHoldsModulesInOrder(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "busybox")
	os.WriteFile(bb, []byte("BB"), 0o755)
	var mods []string
	for _, n := range []string{"virtio.ko", "virtio_ring.ko", "ext4.ko"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(n), 0o644)
		mods = append(mods, p)
	}
	path := filepath.Join(dir, "initrd")
	if err := writeInitrd(path, bb, mods, false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got, order := readCPIO(t, b)
	var ko []string
	for _, n := range order {
		if strings.HasPrefix(n, "lib/modules/") {
			ko = append(ko, strings.TrimPrefix(n, "lib/modules/"))
		}
	}
	if !slices.Equal(ko, []string{"00-virtio.ko", "01-virtio_ring.ko", "02-ext4.ko"}) || !slices.IsSorted(ko) {
		t.Errorf("modules = %v, want in load order and sorted", ko)
	}
	if got["init"].mode != cpioRegular|0o755 || !bytes.Contains(got["init"].data, []byte("switch_root")) {
		t.Errorf("init = %+v", got["init"])
	}
	for _, a := range initrdApplets {
		if string(got["bin/"+a].data) != "busybox" {
			t.Errorf("no applet link bin/%s", a)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	dynamic := "/bin/ls"
	if _, err := os.Stat(dynamic); err != nil {
		t.Skip("no /bin/ls to serve as a dynamically linked binary")
	}
	err := checkStatic(dynamic)
	if !errors.Is(err, ErrDynamicBinary) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("checkStatic(%s) = %v, want ErrDynamicBinary with advice", dynamic, err)
	}
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if err := checkStatic(script); err == nil || errors.Is(err, ErrDynamicBinary) {
		t.Errorf("checkStatic(script) = %v, want not-ELF error", err)
	}
	// Build refuses before it downloads anything.
	_, err = Build(context.Background(), Options{WorkDir: t.TempDir(), CacheDir: t.TempDir(), WeftBinary: dynamic})
	if !errors.Is(err, ErrDynamicBinary) {
		t.Errorf("Build with %s = %v, want ErrDynamicBinary", dynamic, err)
	}
}

func TestStaticGuestBinaryPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	if err := checkStatic(buildGuestBinary(t, t.TempDir())); err != nil {
		t.Fatal(err)
	}
}

func TestXZWithX86Filter(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz is not installed: cannot make a BCJ-filtered stream")
	}
	// x86 code-ish input: plenty of E8/E9 opcodes with near targets, as the filter rewrites them.
	r := rand.New(rand.NewPCG(1, 2))
	var in bytes.Buffer
	for in.Len() < 1<<20 {
		if r.IntN(4) == 0 {
			in.WriteByte(0xE8 + byte(r.IntN(2)))
			off := int32(r.IntN(1<<16) - 1<<15)
			in.Write([]byte{byte(off), byte(off >> 8), byte(off >> 16), byte(off >> 24)})
		} else {
			in.WriteByte(byte(r.IntN(256)))
		}
	}
	self, _ := os.ReadFile("/bin/sh")
	in.Write(self)
	for _, flags := range [][]string{{"--x86", "--lzma2=preset=6"}, {"--lzma2=preset=1"}, {"--x86", "--lzma2=preset=1", "--block-size=300000", "--check=sha256"}} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			cmd := exec.Command("xz", append([]string{"-c", "--check=crc32"}, flags...)...)
			cmd.Stdin = bytes.NewReader(in.Bytes())
			z, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			// Trailing garbage, as in a bzImage.
			z = append(z, "trailing garbage"...)
			out, err := decompressXZ(z)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in.Bytes()) {
				t.Fatalf("decompressed %d bytes differ from the %d compressed", len(out), in.Len())
			}
		})
	}
}

func TestVmlinuxFromBzImage(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz is not installed")
	}
	elfish := append([]byte("\x7fELF"), bytes.Repeat([]byte{0xE8, 1, 2, 0, 0, 0x90}, 1000)...)
	good, err := exec.Command("sh", "-c", fmt.Sprintf("printf '%%s' '%s' | xz -c --x86 --lzma2", "x")).Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xz", "-c", "--check=crc32", "--x86", "--lzma2")
	cmd.Stdin = bytes.NewReader(elfish)
	elfz, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	// A decoy stream that is not an ELF file, a broken one, then the kernel.
	var bz bytes.Buffer
	bz.WriteString("setup code")
	bz.Write(good)
	bz.Write(xzMagic)
	bz.WriteString("broken")
	bz.Write(elfz)
	bz.WriteString("trailer")
	out, err := vmlinuxFromBzImage(bz.Bytes())
	if err != nil || !bytes.Equal(out, elfish) {
		t.Fatalf("vmlinuxFromBzImage = %d bytes, %v", len(out), err)
	}
	if _, err := vmlinuxFromBzImage([]byte("no kernel here")); err == nil {
		t.Error("no error without a stream")
	}
}

func TestSmallParsers(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/lib/modules/6.1/kernel/drivers/char/hw_random/virtio-rng.ko", "virtio_rng"},
		{"ext4.ko.xz", "ext4"},
		{"modules.builtin", ""},
	} {
		if got := moduleName(tt.in); got != tt.want {
			t.Errorf("moduleName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := softdepPre("pre: crc32c foo post: bar"); !slices.Equal(got, []string{"crc32c", "foo"}) {
		t.Errorf("softdepPre = %v", got)
	}
	if got := debVersion("/c/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"); got != "1:1.35.0-4+deb12u1+b1" {
		t.Errorf("debVersion = %q", got)
	}
	for _, tt := range []struct {
		b    byte
		want int
	}{{0, 4096}, {1, 6144}, {16, 1 << 20}, {18, 2 << 20}, {19, 3 << 20}, {22, 8 << 20}} {
		if got, _ := lzma2DictCap(tt.b); got != tt.want {
			t.Errorf("lzma2DictCap(%d) = %d, want %d", tt.b, got, tt.want)
		}
	}
}

func TestQEMUCommand(t *testing.T) {
	argv := QEMUCommand(BootOptions{
		Kernel: "/k", Initrd: "/i", Disk: "/d,x.qcow2", DiskFormat: "qcow2", Cmdline: "console=ttyS0",
		MemoryMB: 512, CPUs: 2, AgentSocket: "/a.sock", ConsoleLog: "/c.log", QMPSocket: "/q.sock",
		HostFwd: []string{"tcp::8080-:80", "tcp:127.0.0.1:2222-:22"}, NoReboot: true,
	})
	cmd := strings.Join(argv, " ")
	for _, want := range []string{
		"qemu-system-x86_64 -M microvm,",
		"-nodefaults", "-no-user-config", "-m 512", "-smp 2", "-accel tcg -cpu max", "-no-reboot",
		"-kernel /k", "-initrd /i",
		"file=/d,,x.qcow2,format=qcow2,",
		"-device virtio-blk-device,drive=disk0",
		"-netdev user,id=net0,hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:2222-:22",
		"socket,id=agent,path=/a.sock,server=on,wait=off",
		"virtserialport,chardev=agent,name=weft.agent",
		"file,id=con0,path=/c.log,append=on",
		"-qmp unix:/q.sock,server=on,wait=off",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command lacks %q:\n%s", want, cmd)
		}
	}
	i := slices.Index(argv, "-append")
	if i < 0 || argv[i+1] != "console=ttyS0 tsc_early_khz="+strconv.Itoa(HostTSCkHz()) {
		t.Errorf("-append %q, want the TSC frequency added", argv[i+1])
	}

	kvm := strings.Join(QEMUCommand(BootOptions{Kernel: "/k", Cmdline: "x", KVM: true, NoNetwork: true}), " ")
	if !strings.Contains(kvm, "-enable-kvm -cpu host") || strings.Contains(kvm, "tsc_early_khz") || strings.Contains(kvm, "-netdev") {
		t.Errorf("KVM command: %s", kvm)
	}
}

var _ io.Writer = (*bytes.Buffer)(nil)
