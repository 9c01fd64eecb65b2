package boltlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/weftcloud/weft/internal/vfs"
)

// The log makes a group of writes durable with one fdatasync, where a
// bbolt commit needs two (its pages, then its meta page). Segments are
// files of segmentSize that are overwritten in place and recycled, so
// after their first use a write changes no file size and the fdatasync
// flushes data alone, without a journal commit.
//
// A segment is a run of frames:
//
//	u32 payload length | u32 CRC-32C of (seq, payload) | u64 seq | payload
//
// seq is the segment's own sequence number, also in its file name. A
// recycled segment still holds frames of its previous life; they carry an
// older seq, so a reader stops at the first frame that is not this
// segment's, as it does at zeros, at a torn frame or at a bad checksum.
const (
	segmentSize = 8 << 20
	frameHeader = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// change is one record of the log: a key's new value (val nil deletes
// the key) when op is 0, or a bucket made (opMkBucket) or deleted
// (opRmBucket).
type change struct {
	op     byte
	bucket string // bucketID of the bucket's path
	key    []byte
	val    []byte
}

// A frame's payload starts with its kind: the writes of a group of Write
// calls, which go through the overlay, or those of one Update, which went
// to bbolt straight, bucket changes included, and are replayed in order
// between the groups around them.
const (
	frameWrites byte = iota
	frameUpdate
)

// frame is one decoded frame.
type frame struct {
	kind    byte
	changes []change
}

// bucketID names a nested bucket by its path from the top, each name
// prefixed by its length.
func bucketID(parent string, name []byte) string {
	b := binary.AppendUvarint([]byte(parent), uint64(len(name)))
	return string(append(b, name...))
}

// bucketPath splits a bucketID back into its names.
func bucketPath(id string) ([][]byte, error) {
	var path [][]byte
	p := []byte(id)
	for len(p) > 0 {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errBadRecord
		}
		path = append(path, p[k:k+int(n)])
		p = p[k+int(n):]
	}
	return path, nil
}

const (
	opPut byte = iota + 1
	opDel
	opMkBucket
	opRmBucket
)

func appendChange(b []byte, c change) []byte {
	op := c.op
	switch {
	case op != 0:
	case c.val == nil:
		op = opDel
	default:
		op = opPut
	}
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(c.bucket)))
	b = append(b, c.bucket...)
	if op == opMkBucket || op == opRmBucket {
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(c.key)))
	b = append(b, c.key...)
	if op == opPut {
		b = binary.AppendUvarint(b, uint64(len(c.val)))
		b = append(b, c.val...)
	}
	return b
}

var errBadRecord = errors.New("boltlog: malformed log record")

func decodeFrame(p []byte) (frame, error) {
	if len(p) == 0 || p[0] != frameWrites && p[0] != frameUpdate {
		return frame{}, errBadRecord
	}
	f := frame{kind: p[0]}
	p = p[1:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errBadRecord
		}
		f := p[k : k+int(n)]
		p = p[k+int(n):]
		return f, nil
	}
	for len(p) > 0 {
		op := p[0]
		p = p[1:]
		if op < opPut || op > opRmBucket || op > opDel && f.kind != frameUpdate {
			return frame{}, errBadRecord
		}
		bucket, err := field()
		if err != nil {
			return frame{}, err
		}
		c := change{bucket: string(bucket)}
		switch op {
		case opMkBucket, opRmBucket:
			c.op = op
		case opPut, opDel:
			if c.key, err = field(); err != nil {
				return frame{}, err
			}
			if op == opPut {
				if c.val, err = field(); err != nil {
					return frame{}, err
				}
			}
		}
		f.changes = append(f.changes, c)
	}
	return f, nil
}

func appendFrame(b []byte, seq uint64, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	crc := crc32.Update(0, castagnoli, h[8:])
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc, castagnoli, payload))
	b = append(b, h[:]...)
	return append(b, payload...)
}

// readFrames returns the payloads of seg's frames up to the first that is
// missing, torn or not of seq.
func readFrames(seg []byte, seq uint64) [][]byte {
	var out [][]byte
	for len(seg) >= frameHeader {
		n := binary.LittleEndian.Uint32(seg[0:])
		sum := binary.LittleEndian.Uint32(seg[4:])
		if binary.LittleEndian.Uint64(seg[8:]) != seq || uint64(n) > uint64(len(seg)-frameHeader) {
			break
		}
		payload := seg[frameHeader : frameHeader+int(n)]
		if crc32.Update(crc32.Update(0, castagnoli, seg[8:16]), castagnoli, payload) != sum {
			break
		}
		out = append(out, payload)
		seg = seg[frameHeader+int(n):]
	}
	return out
}

// segment is one log file and where the next frame goes.
type segment struct {
	f   vfs.File
	seq uint64
	off int64
}

// logFiles names a database's log files: name.wal-SEQ for segments and
// name.wal-spare for the next one.
type logFiles struct {
	fs        vfs.FS
	dir, name string
}

func (l logFiles) segment(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s.wal-%016x", l.name, seq))
}

func (l logFiles) spare() string { return filepath.Join(l.dir, l.name+".wal-spare") }

// write puts frame at the end of the segment; the syncer makes it
// durable. A write that fails (the disk is full) leaves the end where it
// was: the next frame overwrites what it left.
func (s *segment) write(frame []byte) error {
	if _, err := s.f.WriteAt(frame, s.off); err != nil {
		return fmt.Errorf("boltlog: write log: %w", err)
	}
	s.off += int64(len(frame))
	return nil
}

// seqs lists the database's segments by sequence.
func (l logFiles) seqs() ([]uint64, error) {
	prefix := l.name + ".wal-"
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("boltlog: list log: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || n == filepath.Base(l.spare()) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimPrefix(n, prefix), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("boltlog: unexpected log file %s", filepath.Join(l.dir, n))
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// replay reads every frame logged, oldest first, and the highest segment
// sequence it found.
func (l logFiles) replay() ([]frame, uint64, error) {
	seqs, err := l.seqs()
	if err != nil {
		return nil, 0, err
	}
	var all []frame
	var last uint64
	for _, seq := range seqs {
		data, err := vfs.ReadFile(l.fs, l.segment(seq))
		if err != nil {
			return nil, 0, fmt.Errorf("boltlog: read log: %w", err)
		}
		for _, p := range readFrames(data, seq) {
			f, err := decodeFrame(p)
			if err != nil {
				return nil, 0, fmt.Errorf("boltlog: segment %d: %w", seq, err)
			}
			all = append(all, f)
		}
		last = seq
	}
	return all, last, nil
}

// reset leaves an empty active segment numbered seq and a spare, reusing
// the files already there (their old frames carry older sequence numbers)
// so that, once used, they need no allocation.
func (l logFiles) reset(seq uint64) (active *segment, spare vfs.File, err error) {
	seqs, err := l.seqs()
	if err != nil {
		return nil, nil, err
	}
	old := []string{l.spare()}
	for _, s := range seqs {
		old = append(old, l.segment(s))
	}
	want := []string{l.segment(seq), l.spare()}
	var files []vfs.File
	for i, path := range want {
		f, err := l.takeFile(old, path)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, err
		}
		files = append(files, f)
		old = slices.DeleteFunc(old, func(p string) bool { return p == want[i] })
	}
	for _, p := range old {
		if err := l.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("boltlog: remove old log: %w", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		files[0].Close()
		files[1].Close()
		return nil, nil, fmt.Errorf("boltlog: sync %s: %w", l.dir, err)
	}
	return &segment{f: files[0], seq: seq}, files[1], nil
}

// takeFile opens path, renaming the first existing file of old to it, or
// creating it. Its blocks are allocated (an older version left them
// sparse), so that writing the log needs no space: on a full disk, writes
// that free space, such as deletes, still get logged.
func (l logFiles) takeFile(old []string, path string) (vfs.File, error) {
	f, err := l.openFile(old, path)
	if err != nil {
		return nil, err
	}
	if err := vfs.Allocate(f, 0, segmentSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("boltlog: allocate log: %w", err)
	}
	return f, nil
}

func (l logFiles) openFile(old []string, path string) (vfs.File, error) {
	for _, o := range old {
		if _, err := l.fs.Stat(o); err != nil {
			continue
		}
		if o != path {
			if err := l.fs.Rename(o, path); err != nil {
				return nil, fmt.Errorf("boltlog: recycle log file: %w", err)
			}
		}
		f, err := l.fs.OpenFile(path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("boltlog: open log: %w", err)
		}
		return f, nil
	}
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("boltlog: create log: %w", err)
	}
	return f, nil
}
