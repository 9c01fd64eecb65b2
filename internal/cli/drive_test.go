package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
)

// scrubDrive makes a drive's run-dependent parts fixed: the blob's random
// suffix and snapshot times, keeping their width.
func scrubDrive(out string) string {
	out = regexp.MustCompile(`(drive-[a-z0-9-]+-)[0-9a-f]{6}\b`).ReplaceAllString(out, "${1}xxxxxx")
	out = regexp.MustCompile(`@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z`).ReplaceAllString(out, "@2026-01-02T03:04:05.0000000Z")
	return scrub(out)
}

// TestDriveCommands makes, snapshots, restores and deletes drives through
// the real API on a real storage service, as the operator and as a tenant
// whose disk quota stops it.
func TestDriveCommands(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, op := tenancyController(t)
	as, must := withToken(t, addr, op)
	checkGolden(t, "drive-create.golden", scrubDrive(must("drive", "create", "data", "--size", "32Mi")))
	snap := strings.TrimSpace(must("drive", "snapshot", "data"))
	if !regexp.MustCompile(`^data@\d{4}-.*Z$`).MatchString(snap) {
		t.Fatalf("weft drive snapshot printed %q, not DRIVE@TIME", snap)
	}
	restored := must("drive", "create", "copy", "--from-snapshot", snap, "-o", "json")
	checkGolden(t, "drive-create-from.json.golden", scrubDrive(restored))
	checkGolden(t, "drive-show.golden", scrubDrive(must("drive", "show", "data")))
	checkGolden(t, "drive-list.golden", scrubDrive(must("drive", "list")))
	checkGolden(t, "drive-list.json.golden", scrubDrive(must("drive", "list", "-o", "json")))

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drive", "create", "nosize"}, 2, "--disk-size: the drive's size is required"},
		{[]string{"drive", "create", "data", "--disk-size", "32Mi"}, 1, "a drive named data exists"},
		{[]string{"drive", "create", "Bad_Name", "--disk-size", "32Mi"}, 1, "is not a drive name"},
		{[]string{"drive", "create", "tiny", "--disk-size", "1Mi"}, 1, "a drive needs at least 16Mi"},
		{[]string{"drive", "create", "c2", "--from-snapshot", "data@2020-01-01T00:00:00.0000000Z"}, 1, "drive data has no snapshot"},
		{[]string{"drive", "create", "c3", "--from-snapshot", snap, "--disk-size", "64Mi"}, 1, "has the snapshot's size (32Mi)"},
		{[]string{"drive", "snapshot", "nope"}, 1, "no drive named nope"},
	} {
		_, errOut, code := as(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("weft %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}

	// Drives count against the disk quota, with the VMs' disks.
	must("tenant", "create", "acme", "--disk", "40Mi")
	must("drive", "create", "a1", "--disk-size", "32Mi", "--tenant", "acme")
	if _, errOut, code := as("drive", "create", "a2", "--size", "16Mi", "--tenant", "acme"); code == 0 || !strings.Contains(errOut, "quota exceeded: disk 32Mi used + 16Mi asked > 40Mi allowed") {
		t.Errorf("a drive over the disk quota: exit %d, %s", code, errOut)
	}
	// Drives are the tenant's: another tenant's name is unknown.
	if _, errOut, code := as("drive", "show", "a1"); code == 0 || !strings.Contains(errOut, "no drive named a1") {
		t.Errorf("acme's drive from the default tenant: exit %d, %s", code, errOut)
	}
	if out := must("drive", "list", "-A"); !regexp.MustCompile(`(?m)^acme +a1 `).MatchString(out) {
		t.Errorf("every tenant's drives:\n%s", out)
	}
	var usage api.Usage
	if err := json.Unmarshal([]byte(must("tenant", "show", "acme", "-o", "json")), &struct {
		Used *api.Usage `json:"used"`
	}{&usage}); err != nil || usage.Disk != 32<<20 {
		t.Errorf("acme's disk usage: %v (%v), want 32Mi", usage.Disk, err)
	}

	if out := must("drive", "delete", "data"); out != "drive data deleted with its snapshots\n" {
		t.Errorf("weft drive delete: %q", out)
	}
	if _, errOut, code := as("drive", "create", "c4", "--from-snapshot", snap); code == 0 || !strings.Contains(errOut, "no drive named data") {
		t.Errorf("a snapshot of a deleted drive: exit %d, %s", code, errOut)
	}
	// The copy outlives the drive it was made from.
	if out := must("drive", "list"); !strings.Contains(out, "copy") || strings.Contains(out, "data ") {
		t.Errorf("drives after deleting data:\n%s", out)
	}
}
