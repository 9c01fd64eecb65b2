package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/driver"
)

// driveSet is the drives of one process or container instance, mounted
// on this node while it runs here (a VM's are disks, see diskSet). They are served by the agent (internal/drive's FUSE server):
// an agent that restarts restarts the instances that have drives, on
// drives mounted anew.
type driveSet struct {
	drives []*drive.Drive
	dir    string            // the instance's drives folder, removed once they are all detached
	env    map[string]string // WEFT_DRIVE_<NAME>: where the instance finds each
	mounts []driver.Mount    // where a container instance sees each
}

var errNoDriveAccess = errors.New("the controller gave no access to the instance's drives (does it run the storage service?)")

// drivesDir is where instance id's drives are mounted on this node: not in
// the instance's folder, which the agent deletes when the instance stops
// (a drive it failed to unmount must never be deleted through).
func (a *Agent) drivesDir(id string) string {
	return filepath.Join(a.cfg.DataDir, "drives", id)
}

// attachDrives takes each drive's lease (as takeDisk does for VM disks)
// and mounts its ext4 file system, made on first use.
func (a *Agent) attachDrives(ctx context.Context, id string, role api.RoleSpec, access []api.DiskAccess) (*driveSet, error) {
	if len(access) != len(role.Drives) {
		return nil, errNoDriveAccess
	}
	if err := drive.Available(); err != nil {
		return nil, err
	}
	set := &driveSet{dir: a.drivesDir(id), env: map[string]string{}}
	for i, d := range role.Drives {
		disk, err := a.takeDisk(ctx, id, access[i])
		if err != nil {
			set.detach(a)
			return nil, err
		}
		mnt := filepath.Join(set.dir, d.Name, "mnt")
		dr, err := drive.Attach(ctx, disk, drive.Options{
			Work: filepath.Join(set.dir, d.Name, "work"), Mount: mnt,
			Log: a.log.With("instance", id, "drive", d.Name),
		})
		if err != nil {
			set.detach(a)
			return nil, fmt.Errorf("drive %s: %w", d.Name, err)
		}
		set.drives = append(set.drives, dr)
		if role.Runtime == api.RuntimeContainer {
			set.env[api.DriveEnv(d.Name)] = d.Mount
			set.mounts = append(set.mounts, driver.Mount{Source: mnt, Target: d.Mount})
		} else {
			set.env[api.DriveEnv(d.Name)] = mnt
		}
	}
	return set, nil
}

// detach unmounts the drives. A drive that cannot be unmounted (a process
// still holds a file on it) is left mounted, and so is its folder.
func (s *driveSet) detach(a *Agent) {
	if s == nil {
		return
	}
	ok := true
	for _, d := range s.drives {
		if err := d.Detach(); err != nil {
			a.log.Error("drive not detached", "path", d.Path(), "err", err)
			ok = false
		}
	}
	s.drives = nil
	if ok {
		// Only empty folders: RemoveAll would reach into a mount left
		// behind by an agent that died, and delete the drive's files.
		removeEmpty(s.dir)
	}
}

// removeEmpty removes dir's empty folders, depth first, and dir if it
// ends up empty; it never removes a file.
func removeEmpty(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeEmpty(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir) // fails, as it should, when something is left
}
