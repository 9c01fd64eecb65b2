package table

import (
	"encoding/binary"
	"strings"
)

// Entity keys in bbolt are PartitionKey, a zero byte, then RowKey. Keys may
// not hold control characters, so the separator sorts below any key byte
// and a cursor walks a table in (PartitionKey, RowKey) order.
const keySep = 0x00

func entityKey(pk, rk string) []byte {
	b := make([]byte, 0, len(pk)+1+len(rk))
	b = append(b, pk...)
	b = append(b, keySep)
	return append(b, rk...)
}

func splitKey(k []byte) (pk, rk string, ok bool) {
	s := string(k)
	i := strings.IndexByte(s, keySep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func appendVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

// decoder reads what encodeEntity wrote; it records the first short read
// in err instead of failing each call, so callers check once at the end.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
