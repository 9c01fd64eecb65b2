package blob

import (
	"encoding/binary"
	"math"
)

// The range map of a page blob records which pages were ever written (and
// not cleared since) as disjoint, non-adjacent [start, end) byte ranges, one
// key per range, so a 4 KiB write touches a couple of keys whatever the
// disk's size and Get Page Ranges never scans the data file.

type pageRange struct{ start, end int64 } // [start, end)

func rangeKey(file string, start int64) []byte {
	k := make([]byte, 0, len(file)+9)
	k = append(k, file...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(start))
}

func rangePrefix(file string) []byte { return []byte(file + "\x00") }

func decodeRange(prefix, k, v []byte) pageRange {
	return pageRange{int64(binary.BigEndian.Uint64(k[len(prefix):])), int64(binary.BigEndian.Uint64(v))}
}

// rangesFrom returns the ranges that end after start and begin before end,
// unclipped.
func (t *txn) rangesFrom(file string, start, end int64) []pageRange {
	prefix := rangePrefix(file)
	c := t.bucket(bktPages).Cursor()
	var out []pageRange
	k, v := c.Seek(rangeKey(file, start))
	// The range before the seek position may reach into [start, end).
	var pk, pv []byte
	if k == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil && hasPrefix(pk, prefix) {
		if r := decodeRange(prefix, pk, pv); r.end > start && r.start < end {
			out = append(out, r)
		}
	}
	for k, v = c.Seek(rangeKey(file, start)); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		r := decodeRange(prefix, k, v)
		if r.start >= end {
			break
		}
		out = append(out, r)
	}
	return out
}

func (t *txn) putRange(file string, r pageRange) error {
	return t.bucket(bktPages).Put(rangeKey(file, r.start), binary.BigEndian.AppendUint64(nil, uint64(r.end)))
}

func (t *txn) delRange(file string, r pageRange) error {
	return t.bucket(bktPages).Delete(rangeKey(file, r.start))
}

// addRange marks [start, end) written, merging with overlapping and
// adjacent ranges.
func (t *txn) addRange(file string, start, end int64) error {
	merged := pageRange{start, end}
	for _, r := range t.rangesFrom(file, max(start-1, 0), end+1) {
		if r.end < start || r.start > end {
			continue
		}
		merged.start, merged.end = min(merged.start, r.start), max(merged.end, r.end)
		if err := t.delRange(file, r); err != nil {
			return err
		}
	}
	return t.putRange(file, merged)
}

// clearRange marks [start, end) unwritten, splitting ranges that straddle it.
func (t *txn) clearRange(file string, start, end int64) error {
	for _, r := range t.rangesFrom(file, start, end) {
		if err := t.delRange(file, r); err != nil {
			return err
		}
		if r.start < start {
			if err := t.putRange(file, pageRange{r.start, start}); err != nil {
				return err
			}
		}
		if r.end > end {
			if err := t.putRange(file, pageRange{end, r.end}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *txn) deleteRanges(file string) error {
	return t.clearRange(file, 0, math.MaxInt64)
}

func (t *txn) copyRanges(from, to string) error {
	for _, r := range t.rangesFrom(from, 0, math.MaxInt64) {
		if err := t.putRange(to, r); err != nil {
			return err
		}
	}
	return nil
}

// clip limits ranges to [start, end).
func clip(rs []pageRange, start, end int64) []pageRange {
	out := rs[:0]
	for _, r := range rs {
		r.start, r.end = max(r.start, start), min(r.end, end)
		if r.start < r.end {
			out = append(out, r)
		}
	}
	return out
}
