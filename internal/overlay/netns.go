package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces live (as with `ip netns add`).
const netnsDir = "/run/netns"

// inNetns runs fn on an OS thread switched into the namespace at path ("" is
// the caller's own). Sockets and tap devices fn creates belong to that
// namespace for their whole life, whatever thread uses them later.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("overlay: open namespace %s: %w", path, err)
	}
	defer target.Close()
	return onThreadIn(target, fn)
}

// onThreadIn runs fn with the current goroutine's OS thread in ns. If the
// thread cannot be switched back it stays locked, so the runtime discards
// it instead of reusing a thread in the wrong namespace.
func onThreadIn(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("overlay: current namespace: %w", err)
	}
	defer origin.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("overlay: enter namespace: %w", err)
	}
	fnErr := fn()
	if err := netns.Set(origin); err != nil {
		return errors.Join(fnErr, fmt.Errorf("overlay: return from namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// ensureNamedNetns makes the named namespace name (a bind mount under
// /run/netns) unless it exists, and returns its path. The new namespace is
// made on a locked thread that returns to its own namespace afterwards.
func ensureNamedNetns(name string) (string, error) {
	path := filepath.Join(netnsDir, name)
	if h, err := netns.GetFromPath(path); err == nil {
		// A file left by a crash before the mount is not a namespace.
		if isNetns(h) {
			h.Close()
			return path, nil
		}
		h.Close()
		_ = netns.DeleteNamed(name)
		_ = os.Remove(path)
	}
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return "", fmt.Errorf("overlay: current namespace: %w", err)
	}
	defer origin.Close()
	created, err := netns.NewNamed(name)
	if created.IsOpen() {
		created.Close()
	}
	if setErr := netns.Set(origin); setErr != nil {
		return "", fmt.Errorf("overlay: return from namespace %s: %w", name, setErr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return "", fmt.Errorf("overlay: create namespace %s: %w", name, err)
	}
	return path, nil
}

// isNetns tells a mounted namespace from the empty file a crash between
// creating and mounting it leaves: only the former is on nsfs.
func isNetns(h netns.NsHandle) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(h), &st) == nil && st.Type == unix.NSFS_MAGIC
}

// deleteNamedNetns removes a named namespace; a missing one is not an error.
func deleteNamedNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Not mounted (a crash between creating the file and mounting).
		if rmErr := os.Remove(path); rmErr != nil {
			return fmt.Errorf("overlay: delete namespace %s: %w", name, err)
		}
	}
	return nil
}

// namedNetns lists the named namespaces whose names start with prefix.
func namedNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: list namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if len(e.Name()) > len(prefix) && e.Name()[:len(prefix)] == prefix {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
