package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/nbd"
	"github.com/weftcloud/weft/internal/sockdir"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// diskSet is the NBD servers of one VM instance's disks: a persistent
// VM's own, and the drives of a vm role's slot. They run in the agent:
// when the agent restarts, QEMU waits for the new agent's servers (it
// reconnects) and the guest sees a pause, not an error.
type diskSet struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	disks   []driver.Disk
	drives  []driver.Disk // with the mount of each in the guest
	sockDir string        // removed on close when it is not the instance's folder
	dir     string
}

// leaseID is the lease an instance holds on its disks: a UUID derived from
// the instance's ID, the same across agent restarts on one node, different
// for the instance that replaces it elsewhere.
func leaseID(instance string) string {
	h := sha256.Sum256([]byte("weft-disk-lease/" + instance))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// attachDisks takes the lease on each disk (breaking another holder's: the
// controller assigns a persistent instance to one node at a time, and the
// node it left must be fenced) and serves the disk over NBD from the
// instance's folder. drives (access to role's drives, in order) are
// served the same way, each formatted ext4 first if it is blank.
func (a *Agent) attachDisks(ctx context.Context, id, dir string, access []api.DiskAccess, role []api.RoleDrive, drives []api.DiskAccess) (*diskSet, error) {
	// The longest socket name decides whether the instance's folder will do.
	longest := ""
	for _, d := range slices.Concat(access, drives) {
		if name := "drive-" + d.Name + ".sock"; len(name) > len(longest) {
			longest = name
		}
	}
	set := &diskSet{dir: dir, sockDir: sockdir.For(dir, longest, "disks\x00"+dir)}
	if err := os.MkdirAll(set.sockDir, 0o700); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	set.cancel = cancel
	serve := func(kind string, d api.DiskAccess, disk *vmdisk.Disk) (driver.Disk, error) {
		sock := filepath.Join(set.sockDir, kind+"-"+d.Name+".sock")
		os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return driver.Disk{}, fmt.Errorf("%s %s: %w", kind, d.Name, err)
		}
		srv := &nbd.Server{Name: d.Name, Backend: disk, Log: a.log.With("instance", id)}
		set.wg.Add(1)
		go func() { defer set.wg.Done(); srv.Serve(sctx, ln) }()
		return driver.Disk{Name: d.Name, Socket: sock, Export: d.Name, Size: d.Size}, nil
	}
	for _, d := range access {
		disk, err := a.takeDisk(ctx, id, d)
		if err == nil {
			var served driver.Disk
			if served, err = serve("disk", d, disk); err == nil {
				set.disks = append(set.disks, served)
			}
		}
		if err != nil {
			set.close()
			return nil, err
		}
	}
	for i, d := range drives {
		served, err := a.serveDrive(ctx, id, dir, d, serve)
		if err != nil {
			set.close()
			return nil, err
		}
		served.Mount = role[i].Mount
		set.drives = append(set.drives, served)
	}
	return set, nil
}

// serveDrive takes a VM's drive, formats it if it is blank (the guest
// mounts ext4, and need not have mkfs), and serves it.
func (a *Agent) serveDrive(ctx context.Context, id, dir string, d api.DiskAccess, serve func(string, api.DiskAccess, *vmdisk.Disk) (driver.Disk, error)) (driver.Disk, error) {
	disk, err := a.takeDisk(ctx, id, d)
	if err != nil {
		return driver.Disk{}, err
	}
	// mkfs.ext4's sparse file goes in the instance's folder: one left by
	// an agent that died meanwhile goes with the instance.
	formatted, err := drive.Format(ctx, disk, dir)
	if err != nil {
		return driver.Disk{}, fmt.Errorf("drive %s: %w", d.Name, err)
	}
	if formatted {
		a.log.Info("drive formatted", "instance", id, "drive", d.Name)
	}
	return serve("drive", d, disk)
}

// takeDisk opens a disk (of a VM, or a drive) for instance id, taking its
// lease and breaking another holder's: the controller assigns the instance
// to one node at a time, and the node it left must be fenced. Every write
// of the disk carries the lease.
func (a *Agent) takeDisk(ctx context.Context, id string, d api.DiskAccess) (*vmdisk.Disk, error) {
	blobs, err := vmdisk.Client(d)
	if err != nil {
		return nil, err
	}
	lease := leaseID(id)
	if err := blobs.AcquireLease(ctx, d.Container, d.Blob, lease, -1); errors.Is(err, blobclient.ErrLease) {
		a.log.Warn("taking over a disk another node held", "instance", id, "disk", d.Name)
		if err = blobs.BreakLease(ctx, d.Container, d.Blob); err == nil {
			err = blobs.AcquireLease(ctx, d.Container, d.Blob, lease, -1)
		}
		if err != nil {
			return nil, fmt.Errorf("disk %s: take its lease: %w", d.Name, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("disk %s: take its lease: %w", d.Name, err)
	}
	return vmdisk.Open(blobs, d.Container, d.Blob, d.Size, lease), nil
}

// close stops the servers.
func (s *diskSet) close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	if s.sockDir != s.dir {
		os.RemoveAll(s.sockDir)
	}
}
