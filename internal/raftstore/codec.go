package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weftcloud/weft/internal/state"
)

// A batch travels in one Raft log entry as:
//
//	version byte (1)
//	uvarint number of ops
//	per op: flags byte (1 delete, 2 check), uvarint len + kind,
//	        uvarint len + key, uvarint rev, uvarint len + value
//
// Every server decodes every entry the same way, so a server that meets a
// version it does not know must stop applying rather than skip the entry.
const batchVersion = 1

const (
	flagDelete = 1 << iota
	flagCheck
)

// errBadBatch is what decodeBatch returns for bytes encodeBatch did not write.
var errBadBatch = errors.New("raftstore: undecodable log entry")

func encodeBatch(ops []state.Op) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, op := range ops {
		size += 1 + 4*binary.MaxVarintLen64 + len(op.Kind) + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, batchVersion)
	buf = binary.AppendUvarint(buf, uint64(len(ops)))
	for _, op := range ops {
		var flags byte
		if op.Delete {
			flags |= flagDelete
		}
		if op.Check {
			flags |= flagCheck
		}
		buf = append(buf, flags)
		buf = appendBytes(buf, []byte(op.Kind))
		buf = appendBytes(buf, []byte(op.Key))
		buf = binary.AppendUvarint(buf, op.Rev)
		buf = appendBytes(buf, op.Value)
	}
	return buf
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// decodeBatch decodes an entry. Values are copied: the store keeps them
// for as long as they are current, and must not pin or share Raft's buffers.
func decodeBatch(data []byte) ([]state.Op, error) {
	d := decoder{buf: data}
	if v := d.byte(); v != batchVersion {
		return nil, fmt.Errorf("%w: version %d", errBadBatch, v)
	}
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if n > uint64(len(data)) { // each op takes at least a byte
		return nil, fmt.Errorf("%w: %d ops in %d bytes", errBadBatch, n, len(data))
	}
	ops := make([]state.Op, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		flags := d.byte()
		op := state.Op{
			Kind:   string(d.bytes()),
			Key:    string(d.bytes()),
			Rev:    d.uvarint(),
			Value:  d.bytes(),
			Delete: flags&flagDelete != 0,
			Check:  flags&flagCheck != 0,
		}
		if len(op.Value) == 0 {
			op.Value = nil
		} else {
			op.Value = append([]byte(nil), op.Value...)
		}
		ops = append(ops, op)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadBatch, len(d.buf))
	}
	if d.err != nil {
		return nil, d.err
	}
	return ops, nil
}

// decoder reads from buf until the first error, which it keeps.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail()
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.buf)) {
		d.fail()
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated", errBadBatch)
	}
}
