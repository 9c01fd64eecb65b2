package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The snapshot stream is JSON, one object per line, readable with jq:
//
//	{"format":"weft-state","version":1,"index":42}
//	{"kind":"nodes","key":"n1","rev":7,"value":{...the stored JSON...}}
//	{"kind":"blobs","key":"k","rev":9,"bytes":"base64..."}   (a value that is not JSON)
//	{"end":true,"count":2}
//
// Values that are valid JSON are embedded as they are stored, so a restore
// gives back the same bytes; the trailer lets Restore tell a complete
// stream from a truncated one.
const (
	snapshotFormat  = "weft-state"
	snapshotVersion = 1
)

// ErrBadSnapshot is returned by Restore for a stream that Snapshot did not
// write, or that was cut short; the store is left unchanged.
var ErrBadSnapshot = errors.New("state: bad snapshot")

type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
}

type snapshotLine struct {
	Kind  string          `json:"kind,omitempty"`
	Key   string          `json:"key,omitempty"`
	Rev   uint64          `json:"rev,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	Bytes []byte          `json:"bytes,omitempty"`
	End   bool            `json:"end,omitempty"`
	Count int             `json:"count,omitempty"`
}

// Snapshot writes the whole state as of one index to w. It copies the
// entry list under the read lock and writes outside it, so a slow w
// does not hold up writers.
func (db *DB) Snapshot(w io.Writer) error {
	c, err := db.Capture()
	if err != nil {
		return err
	}
	return c.Write(w)
}

// Capture is the state as of one index, held for writing later: a Raft
// FSM must take its snapshot before the next batch applies but may write
// it while later batches apply.
type Capture struct {
	index   uint64
	entries []Entry
}

// Capture copies the entry list (not the values, which are never changed
// in place) under the read lock. It returns ErrClosed after Close.
func (db *DB) Capture() (*Capture, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrClosed
	}
	return captureOf(db.v), nil
}

func captureOf(v *view) *Capture {
	c := &Capture{index: v.index}
	for _, kind := range v.kinds() {
		c.entries = append(c.entries, v.tables[kind].list("")...)
	}
	return c
}

// ReadCapture reads a stream written by Snapshot, or returns
// ErrBadSnapshot when Restore would refuse it. A replicated store checks a
// backup with it before handing it to Raft, which cannot undo a restore
// that fails halfway.
func ReadCapture(r io.Reader) (*Capture, error) {
	v, err := readSnapshot(r)
	if err != nil {
		return nil, err
	}
	return captureOf(v), nil
}

// Replace puts entries, all of kind, in place of the capture's entries of
// kind.
func (c *Capture) Replace(kind string, entries []Entry) {
	c.entries = slices.DeleteFunc(c.entries, func(e Entry) bool { return e.Kind == kind })
	c.entries = append(c.entries, entries...)
}

// Index is the store index the capture was taken at.
func (c *Capture) Index() uint64 { return c.index }

// Write writes the capture to w in Snapshot's format.
func (c *Capture) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: snapshotVersion, Index: c.index}); err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	for _, e := range c.entries {
		line := snapshotLine{Kind: e.Kind, Key: e.Key, Rev: e.Rev}
		// Surrounding whitespace would not survive the decoder: such
		// values, like all that are not JSON, go as base64.
		if json.Valid(e.Value) && len(bytes.TrimSpace(e.Value)) == len(e.Value) {
			line.Value = e.Value
		} else {
			line.Bytes = e.Value
		}
		if err := writeLine(bw, line); err != nil {
			return fmt.Errorf("state: snapshot: %w", err)
		}
	}
	if err := enc.Encode(snapshotLine{End: true, Count: len(c.entries)}); err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	return nil
}

// writeLine writes one entry with its JSON value verbatim: the encoder
// would compact a RawMessage and so change the stored bytes.
func writeLine(w *bufio.Writer, line snapshotLine) error {
	raw := line.Value
	line.Value = nil
	head, err := json.Marshal(line)
	if err != nil {
		return err
	}
	if raw == nil {
		head = append(head, '\n')
		_, err = w.Write(head)
		return err
	}
	w.Write(head[:len(head)-1]) // drop "}" to append the value
	w.WriteString(`,"value":`)
	w.Write(raw)
	_, err = w.WriteString("}\n")
	return err
}

// Restore replaces the whole state, on disk and in memory, with a stream
// written by Snapshot, in one transaction: on any error nothing changes.
// Waiters are woken; the index becomes the snapshot's, even if lower.
func (db *DB) Restore(r io.Reader) error {
	nv, err := readSnapshot(r)
	if err != nil {
		return err
	}

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		var names [][]byte
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, append([]byte(nil), name...))
			return nil
		}); err != nil {
			return err
		}
		for _, name := range names {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("drop bucket %s: %w", name, err)
			}
		}
		for kind, t := range nv.tables {
			b, err := tx.CreateBucket([]byte(kindPrefix + kind))
			if err != nil {
				return fmt.Errorf("bucket %s: %w", kind, err)
			}
			b.FillPercent = 0.9 // keys arrive sorted: pack pages
			for _, key := range t.keys {
				e := t.entries[key]
				if err := b.Put([]byte(key), record(e.Rev, e.Value)); err != nil {
					return fmt.Errorf("%s/%s: %w", kind, key, err)
				}
			}
		}
		return putIndex(tx, nv.index)
	})
	if err != nil {
		return fmt.Errorf("state: restore: %w", err)
	}
	db.publish(func(v *view) {
		// A reader's journal position from before the Restore means
		// nothing after it, even at an index the restored state reaches.
		base := max(nv.base, v.index+1)
		*v = *nv
		v.base = base
	})
	db.log.Info("state restored", "index", nv.index)
	return nil
}

func readSnapshot(r io.Reader) (*view, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if h.Format != snapshotFormat || h.Version != snapshotVersion {
		return nil, fmt.Errorf("%w: format %q version %d", ErrBadSnapshot, h.Format, h.Version)
	}
	nv := newView()
	nv.index = h.Index
	for n := 0; ; n++ {
		var line snapshotLine
		if err := dec.Decode(&line); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrBadSnapshot, n, err)
		}
		if line.End {
			if line.Count != n {
				return nil, fmt.Errorf("%w: trailer counts %d entries, stream has %d", ErrBadSnapshot, line.Count, n)
			}
			nv.loaded()
			return nv, nil
		}
		if err := validOp(Op{Kind: line.Kind, Key: line.Key}); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrBadSnapshot, n, err)
		}
		value := []byte(line.Value)
		if value == nil {
			value = line.Bytes
		}
		nv.put(Entry{Kind: line.Kind, Key: line.Key, Rev: line.Rev, Value: cloneBytes(value)})
	}
}
