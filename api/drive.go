package api

import (
	"regexp"
	"strings"
	"time"
)

// Drives are persistent block storage for any instance (weft drive): a
// page blob in the storage service, formatted ext4 by the node that first
// mounts it, fenced by its lease exactly as VM disks are.
//
//	POST   /v1/drives                    CreateDrive -> Drive (201)
//	GET    /v1/drives                    -> []Drive
//	GET    /v1/drives/{name}             -> Drive
//	POST   /v1/drives/{name}/snapshots   -> DriveSnapshot (201)
//	DELETE /v1/drives/{name}             -> 204 (with its snapshots)

// Drive is one drive of a tenant.
type Drive struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	Size   Bytes  `json:"size"`
	// Blob is the page blob holding the drive, in the system account's
	// "disks" container.
	Blob string `json:"blob"`
	// From is the snapshot the drive was made from (DRIVE@TIME).
	From string `json:"from,omitempty"`
	// Slot is set on a drive made for an instance slot of a role
	// (RoleSpec.Drives): it is deleted with the service.
	Slot      *DriveSlot      `json:"slot,omitempty"`
	Snapshots []DriveSnapshot `json:"snapshots,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

// DriveSlot is the instance slot a drive was made for.
type DriveSlot struct {
	Service string `json:"service"`
	Role    string `json:"role"`
	Slot    int    `json:"slot"`
	Drive   string `json:"drive"` // the name in RoleSpec.Drives
}

// DriveSnapshot is a read-only copy of a drive as it was at CreatedAt,
// kept with the drive (deleted with it), from which new drives are made.
type DriveSnapshot struct {
	// ID names it: DRIVE@TIME, TIME being the storage service's snapshot
	// time (2026-01-02T15:04:05.0000000Z).
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateDrive is the body of POST /v1/drives.
type CreateDrive struct {
	Name string `json:"name"`
	// Size is the drive's size; with FromSnapshot it may be left out
	// (the snapshot's size), and may not differ from it.
	Size         Bytes  `json:"size,omitempty"`
	FromSnapshot string `json:"fromSnapshot,omitempty"` // DRIVE@TIME
}

// MinDriveSize is the smallest drive: ext4 with its journal needs room.
const MinDriveSize = 16 << 20

var driveNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$`)

// ValidateDriveName checks a drive's name: lowercase letters, digits and
// dashes (not first or last), at most 128 characters.
func ValidateDriveName(name string) error {
	if !driveNameRE.MatchString(name) {
		return Errorf(CodeInvalid, "name: %q is not a drive name (lowercase letters, digits and dashes, not first or last, at most 128)", name)
	}
	return nil
}

// ParseSnapshotID splits DRIVE@TIME.
func ParseSnapshotID(id string) (drive, at string, err error) {
	drive, at, ok := strings.Cut(id, "@")
	if !ok || ValidateDriveName(drive) != nil {
		return "", "", Errorf(CodeInvalid, "fromSnapshot: %q is not a snapshot (DRIVE@TIME, as weft drive show lists them)", id)
	}
	if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
		return "", "", Errorf(CodeInvalid, "fromSnapshot: %q is not a snapshot: its time %q is not one", id, at)
	}
	return drive, at, nil
}
