// Package replica copies a server's storage to other servers as it
// changes, so that one of them can take over with every acknowledged
// write when the server is lost.
//
// The primary ships ops: the frames of its databases' write-ahead logs
// (internal/storage/boltlog) and the changes of its blob data files, in
// one ordered stream per replica. A replica applies each batch of ops in
// order and answers once it is durable; a write is answered only once
// every replica of the in-sync set has its frame (Shipper). A server that
// joins gets a copy first: each database dumped at a cut in its stream of
// frames, every data file brought level block by block, then the ops
// held back meanwhile (CatchUp).
package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
)

type opKind byte

const (
	opFrame    opKind = iota + 1 // a database's log frame
	opWrite                      // bytes at an offset of a file, made if missing
	opPunch                      // zero a range of a file
	opTruncate                   // set a file's size, made if missing
	opCopy                       // copy a whole file from the primary
	opRemove                     // remove a file
)

// Op is one change of the storage directory. Paths are relative to it,
// with slashes.
type Op struct {
	kind opKind
	db   string // opFrame: the database, "blob", "queue" or "table"
	path string
	off  int64
	n    int64  // opPunch: length; opTruncate: size; opCopy: the size when sent
	data []byte // opFrame: the frame; opWrite: the bytes
}

// size is what the op weighs in a queue.
func (o Op) size() int { return 32 + len(o.db) + len(o.path) + len(o.data) }

func appendOp(b []byte, o Op) []byte {
	b = append(b, byte(o.kind))
	b = binary.AppendUvarint(b, uint64(len(o.db)))
	b = append(b, o.db...)
	b = binary.AppendUvarint(b, uint64(len(o.path)))
	b = append(b, o.path...)
	b = binary.AppendVarint(b, o.off)
	b = binary.AppendVarint(b, o.n)
	b = binary.AppendUvarint(b, uint64(len(o.data)))
	return append(b, o.data...)
}

var errBadOps = errors.New("replica: malformed ops")

// decodeOps reads a batch appendOp wrote. The ops' byte slices alias p.
func decodeOps(p []byte) ([]Op, error) {
	var ops []Op
	for len(p) > 0 {
		var o Op
		o.kind = opKind(p[0])
		if o.kind < opFrame || o.kind > opRemove {
			return nil, fmt.Errorf("%w: op kind %d", errBadOps, p[0])
		}
		p = p[1:]
		var db, path []byte
		var ok bool
		if db, p, ok = readBytes(p); !ok {
			return nil, errBadOps
		}
		if path, p, ok = readBytes(p); !ok {
			return nil, errBadOps
		}
		var k int
		if o.off, k = binary.Varint(p); k <= 0 {
			return nil, errBadOps
		}
		p = p[k:]
		if o.n, k = binary.Varint(p); k <= 0 {
			return nil, errBadOps
		}
		p = p[k:]
		if o.data, p, ok = readBytes(p); !ok {
			return nil, errBadOps
		}
		o.db, o.path = string(db), string(path)
		ops = append(ops, o)
	}
	return ops, nil
}

func readBytes(p []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	return p[k : k+int(n)], p[k+int(n):], true
}
