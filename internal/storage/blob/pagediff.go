package blob

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
)

// diffPages answers Get Page Ranges with prevsnapshot: pages written now and
// not in the snapshot are PageRange, pages in the snapshot and since cleared
// are ClearRange. Pages present in both are compared by content, because we
// keep no per-write history; a page rewritten with identical bytes is
// therefore not reported, which a client using the diff to copy changed
// pages cannot tell apart.
func (s *Service) diffPages(curFile, prevFile string, cur, prev []pageRange) ([]pageListItem, error) {
	var bounds []int64
	for _, r := range cur {
		bounds = append(bounds, r.start, r.end)
	}
	for _, r := range prev {
		bounds = append(bounds, r.start, r.end)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)

	var out []pageListItem
	add := func(kind string, start, end int64) {
		if n := len(out); n > 0 && out[n-1].XMLName.Local == kind && out[n-1].End+1 == start {
			out[n-1].End = end - 1
			return
		}
		out = append(out, pageListItem{XMLName: xml.Name{Local: kind}, Start: start, End: end - 1})
	}
	var cf, pf *os.File
	defer func() {
		if cf != nil {
			cf.Close()
		}
		if pf != nil {
			pf.Close()
		}
	}()
	for i := 0; i+1 < len(bounds); i++ {
		a, b := bounds[i], bounds[i+1]
		inCur, inPrev := covered(cur, a), covered(prev, a)
		switch {
		case inCur && !inPrev:
			add("PageRange", a, b)
		case !inCur && inPrev:
			add("ClearRange", a, b)
		case inCur && inPrev:
			if cf == nil {
				var err error
				if cf, err = os.Open(s.files.path(curFile)); err != nil {
					return nil, fmt.Errorf("blob: opening page file: %w", err)
				}
				if pf, err = os.Open(s.files.path(prevFile)); err != nil {
					return nil, fmt.Errorf("blob: opening page file: %w", err)
				}
			}
			if err := comparePages(cf, pf, a, b, func(x, y int64) { add("PageRange", x, y) }); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func covered(rs []pageRange, x int64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].end > x })
	return i < len(rs) && rs[i].start <= x
}

// comparePages reports the pages of [a, b) whose bytes differ between the
// two files.
func comparePages(f1, f2 *os.File, a, b int64, differ func(start, end int64)) error {
	const chunk = 1 << 20
	b1, b2 := make([]byte, chunk), make([]byte, chunk)
	for off := a; off < b; off += chunk {
		n := min(int64(chunk), b-off)
		if err := readFull(f1, b1[:n], off); err != nil {
			return err
		}
		if err := readFull(f2, b2[:n], off); err != nil {
			return err
		}
		for p := int64(0); p < n; p += pageSize {
			if !bytes.Equal(b1[p:p+pageSize], b2[p:p+pageSize]) {
				differ(off+p, off+p+pageSize)
			}
		}
	}
	return nil
}

// readFull reads at off, treating bytes past the end of the file as zeros.
func readFull(f *os.File, buf []byte, off int64) error {
	n, err := f.ReadAt(buf, off)
	if err == io.EOF {
		clear(buf[n:])
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob: reading page file: %w", err)
	}
	return nil
}
