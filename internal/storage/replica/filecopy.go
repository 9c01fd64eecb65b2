package replica

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A data file is copied to a replica block by block, and only the blocks
// that differ: the replica sends the digest of each block of its own copy
// (a returning server, or a former primary, still holds most of a VM
// disk), and the primary answers with the blocks whose digest differs,
// data or zeroes. A replica with no copy sends no digests and gets every
// block that holds data; holes stay holes on both sides.
const copyBlock = 256 << 10

// maxDigests bounds a copy request's body: 64 MiB of digests is a file of
// 512 GiB.
const maxDigests = 64 << 20

type digest = [sha256.Size]byte

// headerSize carries a copied file's size.
const headerSize = "X-Weft-Size"

// The primary's answer is its file's size in headerSize and a series of
// blocks, each a kind byte, an offset and a length (8 bytes each,
// big-endian), and for a data block its bytes.
const (
	blockData  = 1
	blockZeros = 2
)

// FileHandler serves POST .../file?path=P, a data file of the storage
// directory dir, to a replica copying it; ok refuses callers when this
// server is not the primary.
func FileHandler(dir string, ok func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := req.URL.Query().Get("path")
		if !validPath(path) {
			http.Error(w, "replica: bad path", http.StatusBadRequest)
			return
		}
		if err := ok(); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxDigests))
		if err != nil || len(body)%len(digest{}) != 0 {
			http.Error(w, "replica: the block digests are cut short or too many", http.StatusBadRequest)
			return
		}
		theirs := make([]digest, len(body)/len(digest{}))
		for i := range theirs {
			copy(theirs[i][:], body[i*len(digest{}):])
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(path)))
		if os.IsNotExist(err) {
			http.Error(w, "replica: no such file", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set(headerSize, strconv.FormatInt(st.Size(), 10))
		// An error past this point cuts the body short, which the replica
		// sees as a failed copy.
		bw := bufio.NewWriterSize(w, 64<<10)
		if sendBlocks(bw, f, st.Size(), theirs) == nil {
			bw.Flush()
		}
	})
}

// sendBlocks writes the blocks of f, of size bytes, that differ from the
// replica's digests theirs; a block past theirs is zeroes there.
func sendBlocks(w io.Writer, f *os.File, size int64, theirs []digest) error {
	buf := make([]byte, copyBlock)
	var head [17]byte
	for i := int64(0); i*copyBlock < size; i++ {
		off := i * copyBlock
		n := min(copyBlock, size-off)
		data, err := hasData(f, off, n)
		if err != nil {
			return err
		}
		if !data && i >= int64(len(theirs)) {
			continue // zeroes on both sides
		}
		block := buf[:n]
		if data {
			if err := readBlock(f, block, off); err != nil {
				return err
			}
		}
		if i < int64(len(theirs)) {
			if sumOf(block, data) == theirs[i] {
				continue
			}
		}
		head[0] = blockZeros
		if data {
			head[0] = blockData
		}
		binary.BigEndian.PutUint64(head[1:9], uint64(off))
		binary.BigEndian.PutUint64(head[9:], uint64(n))
		if _, err := w.Write(head[:]); err != nil {
			return err
		}
		if data {
			if _, err := w.Write(block); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasData tells whether f holds data (not only a hole) in [off, off+n).
func hasData(f *os.File, off, n int64) (bool, error) {
	at, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return false, nil // only a hole from off on
	}
	if err != nil {
		return false, err
	}
	return at < off+n, nil
}

// readBlock reads a block at off; what a concurrent write cut off the end
// of the file reads as zeroes (the op that cut it follows the copy).
func readBlock(f *os.File, block []byte, off int64) error {
	n, err := f.ReadAt(block, off)
	if err == io.EOF {
		clear(block[n:])
		return nil
	}
	return err
}

// sumOf is the digest of a block: its bytes, or when it is a hole, as many
// zeroes.
func sumOf(block []byte, data bool) digest {
	if !data {
		clear(block)
	}
	return sha256.Sum256(block)
}

// blockSums digests each block of f, of size bytes.
func blockSums(f *os.File, size int64) ([]byte, error) {
	sums := make([]byte, 0, (size+copyBlock-1)/copyBlock*int64(len(digest{})))
	buf := make([]byte, copyBlock)
	for off := int64(0); off < size; off += copyBlock {
		block := buf[:min(copyBlock, size-off)]
		data, err := hasData(f, off, int64(len(block)))
		if err != nil {
			return nil, err
		}
		if data {
			if err := readBlock(f, block, off); err != nil {
				return nil, err
			}
		}
		sum := sumOf(block, data)
		sums = append(sums, sum[:]...)
	}
	return sums, nil
}

// copyTime is how long a copy of a file of n bytes may take: even at a
// slow 4 MiB/s.
func copyTime(n int64) time.Duration {
	return time.Minute + time.Duration(n>>22)*time.Second
}

// CopyStats counts what copies from the primary brought since the last
// reset.
type CopyStats struct {
	Files   int   `json:"files"`
	Fetched int64 `json:"fetched"` // bytes of blocks that differed
	Zeroed  int64 `json:"zeroed"`  // bytes of blocks that are holes now
	Same    int64 `json:"same"`    // bytes of blocks this replica had already
}

// copyFile brings path level with the primary's copy, in place: the
// blocks that differ are written, the file cut or grown to the primary's
// size. A copy cut short leaves the file between the two, which is fine:
// this server is not in the in-sync set while it is copied, and the next
// copy compares blocks again. A file the primary no longer has was
// removed; the op that says so follows.
func (r *Receiver) copyFile(ctx context.Context, src Source, path string, size int64, w *fileWriter) error {
	ctx, cancel := context.WithTimeout(ctx, copyTime(size))
	defer cancel()
	final := w.abs(path)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	_, err := os.Stat(final)
	created := os.IsNotExist(err)
	f, err := os.OpenFile(final, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	sums, err := blockSums(f, st.Size())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, src.API+routePrefix+"file?path="+url.QueryEscape(path), bytes.NewReader(sums))
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		if created {
			f.Close()
			return os.Remove(final)
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("copy from %s: %s", src.Name, resp.Status)
	}
	size, err = strconv.ParseInt(resp.Header.Get(headerSize), 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("copy from %s: no size", src.Name)
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	stats, err := receiveBlocks(f, bufio.NewReaderSize(resp.Body, 64<<10), size)
	if err != nil {
		return err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return err
	}
	if created {
		w.dirs[filepath.Dir(final)] = true
	}
	stats.Files = 1
	stats.Same = size - stats.Fetched - stats.Zeroed
	r.copied.add(stats)
	return nil
}

func (s *CopyStats) add(o CopyStats) {
	s.Files += o.Files
	s.Fetched += o.Fetched
	s.Zeroed += o.Zeroed
	s.Same += o.Same
}

// receiveBlocks writes what sendBlocks sent into f, of size bytes.
func receiveBlocks(f *os.File, r io.Reader, size int64) (CopyStats, error) {
	var stats CopyStats
	var head [17]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err == io.EOF {
			return stats, nil
		} else if err != nil {
			return stats, err
		}
		off, n := int64(binary.BigEndian.Uint64(head[1:9])), int64(binary.BigEndian.Uint64(head[9:]))
		if off < 0 || n < 0 || n > copyBlock || off+n > size {
			return stats, errors.New("bad block")
		}
		switch head[0] {
		case blockData:
			if m, err := io.Copy(io.NewOffsetWriter(f, off), io.LimitReader(r, n)); err != nil {
				return stats, err
			} else if m != n {
				return stats, io.ErrUnexpectedEOF
			}
			stats.Fetched += n
		case blockZeros:
			if err := zero(f, off, n); err != nil {
				return stats, err
			}
			stats.Zeroed += n
		default:
			return stats, fmt.Errorf("bad block kind %d", head[0])
		}
	}
}
