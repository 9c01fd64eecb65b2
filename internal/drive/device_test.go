package drive

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost lays out a /sys and a /dev: each nbd device is "size" or
// "size:pid" (a device some client runs); devNBD0 makes a /dev/nbd0 (a
// plain file: opening it loads nothing).
func fakeHost(t *testing.T, nbd []string, devNBD0 bool) hostRoots {
	t.Helper()
	root := t.TempDir()
	h := hostRoots{sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	for _, dir := range []string{filepath.Join(h.sys, "block", "loop0"), filepath.Join(h.sys, "block", "vda"), h.dev} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range nbd {
		dir := filepath.Join(h.sys, "block", "nbd"+string(rune('0'+i)))
		os.MkdirAll(dir, 0o755)
		size, pid, _ := strings.Cut(d, ":")
		os.WriteFile(filepath.Join(dir, "size"), []byte(size+"\n"), 0o644)
		if pid != "" {
			os.WriteFile(filepath.Join(dir, "pid"), []byte(pid+"\n"), 0o644)
		}
	}
	if devNBD0 {
		os.WriteFile(filepath.Join(h.dev, "nbd0"), nil, 0o600)
	}
	return h
}

func TestChooseDevice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nbd     []string
		devNBD0 bool
		want    Device
		env     string
		device  Device
		free    []int
		why     string // a part of it
		err     string // a part of it
	}{
		{name: "no nbd driver", want: DeviceAuto, device: DeviceFUSELoop, why: "not loaded"},
		{name: "a /dev/nbd0 that loads nothing", devNBD0: true, device: DeviceFUSELoop, why: "did not load it"},
		{name: "free devices", nbd: []string{"0", "0"}, device: DeviceNBD, free: []int{0, 1}, why: "free device"},
		{name: "one in use", nbd: []string{"1073741824:4242", "0", "0:"}, device: DeviceNBD, free: []int{1, 2}},
		{name: "one left configured by a client that died", nbd: []string{"1073741824", "0"}, device: DeviceNBD, free: []int{1}},
		{name: "all in use", nbd: []string{"512:1", "512:2"}, device: DeviceFUSELoop, why: "in use"},
		{name: "forced fuse-loop by env", nbd: []string{"0"}, env: "fuse-loop", device: DeviceFUSELoop, why: "WEFT_DRIVE_DEVICE"},
		{name: "forced fuse-loop by option", nbd: []string{"0"}, env: "nbd", want: DeviceFUSELoop, device: DeviceFUSELoop, why: "caller"},
		{name: "forced nbd", nbd: []string{"0"}, want: DeviceNBD, device: DeviceNBD, free: []int{0}},
		{name: "forced nbd without the driver", want: DeviceNBD, err: "not loaded"},
		{name: "forced nbd by env, all in use", nbd: []string{"512:1"}, env: "nbd", err: "in use"},
		{name: "unknown", env: "iscsi", err: `unknown device "iscsi"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(DeviceEnv, tc.env)
			h := fakeHost(t, tc.nbd, tc.devNBD0)
			c, err := h.chooseDevice(tc.want)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("chooseDevice = %+v, %v; want an error saying %q", c, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.device != tc.device || !slices.Equal(c.nbd, tc.free) || !strings.Contains(c.why, tc.why) {
				t.Fatalf("chooseDevice = %+v; want device %q, free %v, why saying %q", c, tc.device, tc.free, tc.why)
			}
		})
	}
}

// TestNBDNodeIsMade: a /dev without the nbd device's node gets one, of
// the number /sys gives (mknod: needs root).
func TestNBDNodeIsMade(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a device node needs root")
	}
	h := fakeHost(t, []string{"0", "0"}, false)
	os.WriteFile(filepath.Join(h.sys, "block", "nbd1", "dev"), []byte("43:16\n"), 0o644)
	path, err := h.nbdNode(1)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(h.dev, "nbd1") {
		t.Fatalf("nbdNode(1) = %s", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s is %v, not a block device", path, st.Mode())
	}
}
