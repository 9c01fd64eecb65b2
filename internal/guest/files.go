package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// Files the host puts into the guest (an extension's package and its
// settings): the host sends each file in chunks of fileChunk bytes, so a
// line stays well under maxLine once base64-encoded.
const fileChunk = 1 << 20

// writeFile is the guest's side of OpWriteFile. Missing parent folders
// are made 0700: what the host puts in may be secret (protected
// settings), and only root in the guest should see it.
func writeFile(req request) error {
	if !path.IsAbs(req.Path) || path.Clean(req.Path) != req.Path {
		return fmt.Errorf("writefile: %q is not a clean absolute path", req.Path)
	}
	mode := fs.FileMode(req.Mode).Perm()
	if err := os.MkdirAll(filepath.Dir(req.Path), 0o700); err != nil {
		return fmt.Errorf("writefile: %w", err)
	}
	switch {
	case req.IsDir:
		if err := os.MkdirAll(req.Path, mode); err != nil {
			return fmt.Errorf("writefile: %w", err)
		}
		return os.Chmod(req.Path, mode)
	case req.Link != "":
		if err := os.RemoveAll(req.Path); err != nil {
			return fmt.Errorf("writefile: %w", err)
		}
		return os.Symlink(req.Link, req.Path)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if req.Append {
		flags = os.O_WRONLY | os.O_APPEND
	} else if fi, err := os.Lstat(req.Path); err == nil && !fi.Mode().IsRegular() {
		// A link or folder of the same name from an older version.
		os.RemoveAll(req.Path)
	}
	// Created 0600 and only then given its mode, so the data is never
	// readable by others, whatever the umask and the mode asked.
	f, err := os.OpenFile(req.Path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("writefile: %w", err)
	}
	if !req.Append {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("writefile: %w", err)
		}
	}
	_, err = f.Write(req.Data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writefile: %w", err)
	}
	return nil
}

// remove is the guest's side of OpRemove.
func remove(req request) error {
	if !path.IsAbs(req.Path) || path.Clean(req.Path) != req.Path || req.Path == "/" {
		return fmt.Errorf("remove: %q is not a clean absolute path below /", req.Path)
	}
	if err := os.RemoveAll(req.Path); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// CopyIn copies src on the host (a file, or a folder and everything in
// it) to dst in the guest, an absolute path, keeping modes and symbolic
// links; what dst held of the same names is replaced, other files in it
// stay. Files other than regular ones, folders and links are skipped.
func (c *Client) CopyIn(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		req := request{Op: OpWriteFile, Path: to, Mode: uint32(fi.Mode().Perm())}
		switch {
		case d.IsDir():
			req.IsDir = true
		case d.Type()&fs.ModeSymlink != 0:
			if req.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			return c.copyFile(ctx, p, req)
		default:
			return nil
		}
		_, err = c.call(ctx, req)
		return err
	})
}

// copyFile sends one regular file in chunks.
func (c *Client) copyFile(ctx context.Context, p string, req request) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, fileChunk)
	for first := true; ; first = false {
		n, err := io.ReadFull(f, buf)
		if n > 0 || first {
			req.Data, req.Append = buf[:n], !first
			if _, cerr := c.call(ctx, req); cerr != nil {
				return cerr
			}
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// Remove removes path in the guest, and everything under it when it is a
// folder; a path that does not exist is no error.
func (c *Client) Remove(ctx context.Context, path string) error {
	_, err := c.call(ctx, request{Op: OpRemove, Path: path})
	return err
}
