package driveproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/procstat"
)

// ErrNotServing is Adopt's error when no drive server of the expected
// drive and lease runs in the folder.
var ErrNotServing = errors.New("driveproc: no server of the drive runs")

// Proc is a running drive server.
type Proc struct {
	dir string
	rec serving
}

// Command returns how to start a drive server: given when it is set (tests
// run their own binary), else this executable with the argument
// "drive-serve" (`weft drive-serve DIR`).
func Command(given []string) ([]string, error) {
	cmd, err := procstat.Command(given, "drive-serve")
	if err != nil {
		return nil, fmt.Errorf("driveproc: %w", err)
	}
	return cmd, nil
}

// startTimeout bounds a drive server's start: a blank drive is formatted
// first, through the storage service.
const startTimeout = 2 * time.Minute

// Start starts a drive server in dir (an absolute path, made if missing)
// with command (DIR is appended), in its own session so that it outlives
// the caller, and returns once the drive is mounted, or the server's
// error. A server still running in dir is stopped first (Start fails when
// it refuses); what one that died left mounted is cleared.
func Start(ctx context.Context, command []string, dir string, spec Spec) (*Proc, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("driveproc: the drive's folder %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("driveproc: %w", err)
	}
	// Never two servers of one folder: the earlier one would unmount the
	// later one's drive once it got to unmount its own.
	if p, err := Find(dir); err == nil {
		if err := p.Stop(ctx); err != nil {
			return nil, fmt.Errorf("driveproc: an earlier server still serves the drive: %w", err)
		}
	}
	os.Remove(filepath.Join(dir, servingFile))
	if err := atomicfile.WriteJSON(filepath.Join(dir, specFile), spec); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("driveproc: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(command[0], append(command[1:len(command):len(command)], dir)...)
	// Its own session: neither the agent's signals nor its death reach it.
	// Its output goes to a file, never a pipe the agent holds: a write to
	// a pipe whose reader died kills the writer.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("driveproc: start the drive server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reaped while this process lives
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, err := Adopt(dir, spec); err == nil && p.rec.PID == cmd.Process.Pid {
			return p, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("driveproc: the drive server exited: %s", lastLine(filepath.Join(dir, LogFile), logStart))
		case <-ctx.Done():
			// Whatever it mounted by now it takes down itself.
			cmd.Process.Signal(syscall.SIGTERM)
			return nil, fmt.Errorf("driveproc: the drive server did not mount the drive: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// lastLine is the last line written to the file at path after offset from.
func lastLine(path string, from int64) string {
	b, _ := os.ReadFile(path)
	if from < int64(len(b)) {
		b = b[from:]
	} else {
		b = nil
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}

// Adopt finds the drive server that runs in dir, whoever started it: it
// must be alive (the process its record names, not a later one with the
// same PID) and serve spec's blob under spec's lease, mounted where a
// server in dir mounts it. Otherwise it returns ErrNotServing.
func Adopt(dir string, spec Spec) (*Proc, error) {
	p, err := Find(dir)
	if err != nil {
		return nil, err
	}
	if p.rec.Blob != spec.Access.Blob || p.rec.Lease != spec.Lease {
		return nil, fmt.Errorf("%w in %s: it serves blob %s under lease %s", ErrNotServing, dir, p.rec.Blob, p.rec.Lease)
	}
	return p, nil
}

// Find finds the drive server that runs in dir, whatever it serves, as
// Adopt does.
func Find(dir string) (*Proc, error) {
	var rec serving
	if err := atomicfile.ReadJSON(filepath.Join(dir, servingFile), &rec); err != nil {
		return nil, fmt.Errorf("%w in %s: %v", ErrNotServing, dir, err)
	}
	switch {
	case !procstat.Alive(rec.PID, rec.Start):
		return nil, fmt.Errorf("%w in %s: process %d ended", ErrNotServing, dir, rec.PID)
	case rec.Mount != MountOf(dir):
		return nil, fmt.Errorf("%w in %s: it serves the drive at %s", ErrNotServing, dir, rec.Mount)
	}
	return &Proc{dir: dir, rec: rec}, nil
}

// PID is the server's process ID.
func (p *Proc) PID() int { return p.rec.PID }

// Start is the server's start time (procstat.Stat), which tells it apart
// from a later process with its PID.
func (p *Proc) Start() uint64 { return p.rec.Start }

// Mount is where the drive is mounted.
func (p *Proc) Mount() string { return p.rec.Mount }

// stopTimeout is how long a server has to unmount its drive: umount waits
// up to 3 s for a busy file system, the loop device up to 10 s more.
const stopTimeout = 20 * time.Second

// Stop asks the server to unmount the drive and waits for it to exit. It
// fails, the drive still mounted and served, while a process holds a file
// on it; the server then tries again by itself, and a later Stop may
// succeed.
func (p *Proc) Stop(ctx context.Context) error {
	refused := filepath.Join(p.dir, refusedFile)
	os.Remove(refused)
	if err := syscall.Kill(p.rec.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("driveproc: stop the server of %s: %w", p.rec.Mount, err)
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	for procstat.Alive(p.rec.PID, p.rec.Start) {
		if why, err := os.ReadFile(refused); err == nil {
			return fmt.Errorf("driveproc: the drive at %s is still served: %s", p.rec.Mount, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("driveproc: the drive at %s is still served %s after SIGTERM: %w", p.rec.Mount, stopTimeout, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := os.Stat(filepath.Join(p.dir, servingFile)); err == nil {
		// It died without detaching (killed): take down what it left.
		if err := drive.Clear(options(p.dir)); err != nil {
			return err
		}
	}
	for _, f := range []string{specFile, servingFile, LogFile, refusedFile} {
		os.Remove(filepath.Join(p.dir, f))
	}
	return nil
}

// Clear takes down what a drive server that died left mounted in dir.
func Clear(dir string) error { return drive.Clear(options(dir)) }
