package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
)

// bootSector is a 512-byte master boot record whose program writes a line
// to the first serial port and halts: enough to show that a PC booted the
// disk through its BIOS.
func bootSector(line string) []byte {
	code := []byte{
		0xFC,       // cld
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0xBE, 0x17, 0x7C, // mov si, 0x7c17 (the message)
		0xAC,       // next: lodsb
		0x08, 0xC0, // or al, al
		0x74, 0x06, // jz done
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
		0xEE,       // out dx, al
		0xEB, 0xF5, // jmp next
		0xFA,       // done: cli
		0xF4,       // hlt
		0xEB, 0xFD, // jmp hlt
	}
	sector := make([]byte, 512)
	copy(sector, append(append(code, line...), 0))
	sector[510], sector[511] = 0x55, 0xAA
	return sector
}

// TestBIOSBootFromTheDisk runs an image that has a disk and no kernel (an
// imported disk with its own bootloader): the driver boots it as a PC
// through its BIOS, and what the disk's boot code writes to the serial
// port reaches the instance's log.
func TestBIOSBootFromTheDisk(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("needs qemu-system-x86_64")
	}
	img := t.TempDir()
	disk := make([]byte, 1<<20)
	copy(disk, bootSector("weft-bios-ok\r\n"))
	if err := os.WriteFile(filepath.Join(img, api.ImageFileDisk), disk, 0o644); err != nil {
		t.Fatal(err)
	}
	meta := api.Image{Name: "mbr", Type: api.ImageVM, VM: &api.VMImageConfig{DiskFormat: "raw", DiskSize: 1 << 20}}
	if err := atomicfile.WriteJSON(filepath.Join(img, api.ImageMetaFile), meta); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, Config{})
	spec := driver.Spec{ID: "bios", Dir: instanceDir(t, "bios"), Image: "mbr", ImageDir: img, Memory: 64 << 20, CPU: 1}
	st := startVM(t, d, spec)
	if !st.Running {
		t.Fatalf("status %+v", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(readLogs(t, d, "bios"), "weft-bios-ok") {
		if time.Now().After(deadline) {
			t.Fatalf("the boot sector's line never reached the log:\n%s", readLogs(t, d, "bios"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
