package shim

import (
	"context"
	"io"
	"os"
	"time"
)

// openLogs returns the last tail bytes of the log (and its rotated part)
// and, with follow, what is appended later until ctx ends or running()
// turns false and the file is drained.
func openLogs(ctx context.Context, path string, tail int64, follow bool, running func() bool) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(copyLogs(ctx, pw, path, tail, follow, running))
	}()
	return pr, nil
}

func copyLogs(ctx context.Context, w io.Writer, path string, tail int64, follow bool, running func() bool) error {
	// What is kept: the rotated part first, then the current file.
	older, _ := os.ReadFile(path + ".1")
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) && !follow {
			_, err = w.Write(lastBytes(older, tail))
			return err
		}
		if !os.IsNotExist(err) {
			return err
		}
	}
	var current []byte
	var offset int64
	if f != nil {
		defer f.Close()
		current, _ = io.ReadAll(f)
		offset = int64(len(current))
	}
	all := append(older, current...)
	if _, err := w.Write(lastBytes(all, tail)); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	buf := make([]byte, 32<<10)
	for {
		if f == nil {
			if f, err = os.Open(path); err != nil {
				f = nil
			}
		}
		progressed := false
		if f != nil {
			if fi, err := os.Stat(path); err == nil && fi.Size() < offset {
				// Rotated: start over on the new file.
				f.Close()
				f, offset = nil, 0
				continue
			}
			n, _ := f.ReadAt(buf, offset)
			if n > 0 {
				offset += int64(n)
				progressed = true
				if _, err := w.Write(buf[:n]); err != nil {
					return err
				}
			}
		}
		if !progressed && !running() {
			return nil
		}
		if !progressed {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func lastBytes(b []byte, tail int64) []byte {
	if tail > 0 && int64(len(b)) > tail {
		return b[int64(len(b))-tail:]
	}
	return b
}
