package boltlog

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// dumpFrameSize is the size past which Dump ends a frame: large enough
// that a replica takes a dump in few writes, small enough for one
// message.
const dumpFrameSize = 1 << 20

// Dump calls cut at a point where every frame shipped so far (Options.Ship)
// is in the state it then dumps and no frame shipped after cut returns is;
// then it calls emit with frames that, applied in order with Apply to an
// empty database, make it hold what this one held at the cut: every bucket
// (nested ones too) and every key. Writes go on while the frames are emitted.
//
// cut runs while the database takes no writes, so it must be quick and
// must not call the database. emit may keep the frames it gets. Dump
// returns the first error of emit, wrapped; ErrClosed after Close; or
// the error that stopped the database taking writes.
//
// The dump reads a bbolt read transaction, which holds bbolt's memory
// map: a checkpoint that must grow the file waits for the dump to end,
// and writes wait for that checkpoint once the log reaches four times
// RotateAt, so emit must not wait for writes to this database. Close
// waits for the dump too.
func (db *DB) Dump(cut func(), emit func(frame []byte) error) error {
	r := &request{cut: cut}
	if err := db.send(r); err != nil {
		return err
	}
	defer r.view.bolt.Rollback()
	d := dumper{emit: emit}
	err := r.view.bolt.ForEach(func(name []byte, _ *bolt.Bucket) error {
		return d.bucket(r.view.Bucket(name))
	})
	if err != nil {
		return err
	}
	return d.flush()
}

// takeCut answers a Dump on the loop: with every batch sent shipped and
// published, and no write taken since, the view it opens holds exactly
// the frames shipped so far. Taking the view before calling cut spares
// cut when opening it fails; nothing can be shipped in between.
func (db *DB) takeCut(r *request) error {
	db.drain()
	if err := db.brokenErr(); err != nil {
		return err
	}
	view, err := db.begin()
	if err != nil {
		return err
	}
	r.cut()
	r.view = view
	return nil
}

// dumper turns a view into frames. The buckets it meets go into an
// update frame and the keys into a writes frame, and the update frame is
// always emitted first: a replica makes a key's bucket before the key
// reaches it, or its checkpoint would drop the key.
type dumper struct {
	emit    func([]byte) error
	buckets []byte // frameUpdate payload, not emitted yet
	keys    []byte // frameWrites payload, not emitted yet
}

// bucket dumps b and then, depth first, what it holds.
func (d *dumper) bucket(b *Bucket) error {
	if err := d.add(&d.buckets, frameUpdate, change{op: opMkBucket, bucket: b.id}); err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		// The cursor skips deleted keys, and reads a nested bucket as a
		// key without a value.
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				if err := d.bucket(nb); err != nil {
					return err
				}
				continue
			}
			v = []byte{}
		}
		if err := d.add(&d.keys, frameWrites, change{bucket: b.id, key: k, val: v}); err != nil {
			return err
		}
	}
	return nil
}

// add appends c to a pending payload, and emits what is pending once
// that payload is full.
func (d *dumper) add(payload *[]byte, kind byte, c change) error {
	if *payload == nil {
		*payload = []byte{kind}
	}
	*payload = appendChange(*payload, c)
	if len(*payload) < dumpFrameSize {
		return nil
	}
	return d.flush()
}

// flush emits the pending buckets, then the pending keys.
func (d *dumper) flush() error {
	for _, p := range []*[]byte{&d.buckets, &d.keys} {
		frame := *p
		if frame == nil {
			continue
		}
		*p = nil
		if err := d.emit(frame); err != nil {
			return fmt.Errorf("boltlog: dump: %w", err)
		}
	}
	return nil
}
