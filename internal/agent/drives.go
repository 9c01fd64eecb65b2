package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/driver"
)

// driveSet is the drives of one process or container instance, mounted
// on this node while it runs here (a VM's are disks, see diskSet). Each is
// served by a process of its own (internal/driveproc), which outlives the
// agent: a restarted agent adopts the servers with the instance.
type driveSet struct {
	procs  []*driveproc.Proc
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

// driveSpecs checks that the controller gave access to each of the role's
// drives and says what each drive's server serves.
func driveSpecs(id string, role api.RoleSpec, access []api.DiskAccess) ([]driveproc.Spec, error) {
	if len(access) != len(role.Drives) {
		return nil, errNoDriveAccess
	}
	specs := make([]driveproc.Spec, len(access))
	for i, d := range access {
		specs[i] = driveproc.Spec{Access: d, Lease: leaseID(id)}
	}
	return specs, nil
}

// add records the server p of the role's drive d.
func (s *driveSet) add(role api.RoleSpec, d api.RoleDrive, p *driveproc.Proc) {
	s.procs = append(s.procs, p)
	if role.Runtime == api.RuntimeContainer {
		s.env[api.DriveEnv(d.Name)] = d.Mount
		s.mounts = append(s.mounts, driver.Mount{Source: p.Mount(), Target: d.Mount})
	} else {
		s.env[api.DriveEnv(d.Name)] = p.Mount()
	}
}

// attachDrives takes each drive's lease (as takeDisk does for VM disks)
// and starts its server, which mounts its ext4 file system, made on first
// use.
func (a *Agent) attachDrives(ctx context.Context, id string, role api.RoleSpec, access []api.DiskAccess) (*driveSet, error) {
	specs, err := driveSpecs(id, role, access)
	if err != nil {
		return nil, err
	}
	if err := drive.Available(); err != nil {
		return nil, err
	}
	set := &driveSet{dir: a.drivesDir(id), env: map[string]string{}}
	for i, d := range role.Drives {
		if _, err := a.takeDisk(ctx, id, access[i]); err != nil {
			set.detach(a)
			return nil, err
		}
		p, err := driveproc.Start(ctx, a.cfg.DriveServeCommand, filepath.Join(set.dir, d.Name), specs[i])
		if err != nil {
			set.detach(a)
			return nil, fmt.Errorf("drive %s: %w", d.Name, err)
		}
		a.figures.driveServers.WithLabelValues("started").Inc()
		set.add(role, d, p)
	}
	return set, nil
}

// adoptDrives finds the servers of instance id's drives that an earlier
// agent started, and says whether every drive's was there (alive, and
// serving the drive under the instance's lease). The set holds the ones
// found, to be stopped with the instance.
func (a *Agent) adoptDrives(id string, role api.RoleSpec, access []api.DiskAccess) (*driveSet, bool) {
	set := &driveSet{dir: a.drivesDir(id), env: map[string]string{}}
	specs, err := driveSpecs(id, role, access)
	if err != nil {
		return set, false
	}
	all := true
	for i, d := range role.Drives {
		p, err := driveproc.Adopt(filepath.Join(set.dir, d.Name), specs[i])
		if err != nil {
			a.log.Warn("a drive's server is gone", "instance", id, "drive", d.Name, "err", err)
			a.figures.driveServers.WithLabelValues("lost").Inc()
			all = false
			continue
		}
		a.figures.driveServers.WithLabelValues("adopted").Inc()
		set.add(role, d, p)
	}
	return set, all
}

// stopStrayDrives stops the drive servers of instances this agent does
// not run (whose instance ended while no agent ran), and takes down what
// dead ones left mounted.
func (a *Agent) stopStrayDrives(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "drives", "*"))
	for _, dir := range dirs {
		id := filepath.Base(dir)
		a.mu.Lock()
		_, ours := a.instances[id]
		a.mu.Unlock()
		if ours {
			continue
		}
		set := &driveSet{dir: dir}
		drives, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, d := range drives {
			if p, err := driveproc.Find(d); err == nil {
				set.procs = append(set.procs, p)
			} else if err := driveproc.Clear(d); err != nil {
				a.log.Error("drive left mounted", "path", d, "err", err)
			}
		}
		a.log.Info("stopping the drives of an instance that ended while no agent ran", "instance", id, "servers", len(set.procs))
		set.detach(a)
	}
}

// detach stops the drives' servers, which unmount them. A drive that
// cannot be unmounted (a process still holds a file on it) is left
// mounted and served, and so is its folder.
func (s *driveSet) detach(a *Agent) {
	if s == nil {
		return
	}
	var left []*driveproc.Proc
	for _, p := range s.procs {
		if err := p.Stop(context.Background()); err != nil {
			a.log.Error("drive not detached", "path", p.Mount(), "err", err)
			left = append(left, p)
		}
	}
	s.procs = left
	if len(left) == 0 {
		// Only empty folders: RemoveAll would reach into a mount left
		// behind by a server that died, and delete the drive's files.
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
