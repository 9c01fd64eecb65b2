package vmimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzMagic starts an xz stream.
var xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

// xz filter IDs this package decodes.
const (
	filterX86   = 0x04
	filterLZMA2 = 0x21
)

// vmlinuxFromBzImage finds the xz-compressed kernel inside a bzImage and
// returns it decompressed: the vmlinux ELF, which QEMU boots directly (and
// much faster than the bzImage under TCG, where the decompressor is slow).
// Trailing data after the stream is ignored; when decompressing from one
// occurrence of the magic fails, it tries the next.
func vmlinuxFromBzImage(bz []byte) ([]byte, error) {
	var lastErr error = errors.New("no xz stream")
	for off := 0; ; off++ {
		i := bytes.Index(bz[off:], xzMagic)
		if i < 0 {
			break
		}
		off += i
		out, err := decompressXZ(bz[off:])
		if err != nil {
			lastErr = err
			continue
		}
		if !bytes.HasPrefix(out, []byte("\x7fELF")) {
			lastErr = fmt.Errorf("xz stream at %d is not an ELF file", off)
			continue
		}
		return out, nil
	}
	return nil, fmt.Errorf("vmimage: extract vmlinux: %w", lastErr)
}

// decompressXZ decompresses the first xz stream in data, ignoring what
// follows it. The kernel is compressed with the x86 BCJ filter before LZMA2,
// which github.com/ulikunitz/xz does not support, so it reads the stream's
// block headers itself, decodes the LZMA2 data with the lzma package and
// reverses the BCJ filter here. Integrity checks are not verified: the
// caller checks that the result is an ELF file.
func decompressXZ(data []byte) ([]byte, error) {
	if len(data) < 12+8 || !bytes.HasPrefix(data, xzMagic) {
		return nil, errors.New("xz: no stream header")
	}
	checkSize := xzCheckSize(data[7] & 0x0F)
	var out []byte
	pos := 12
	for {
		if pos >= len(data) {
			return nil, io.ErrUnexpectedEOF
		}
		if data[pos] == 0 { // the index: no more blocks
			return out, nil
		}
		block, n, err := decompressXZBlock(data[pos:])
		if err != nil {
			return nil, err
		}
		out = append(out, block...)
		pos += (n+3)&^3 + checkSize
	}
}

// xzCheckSize is the size of a block's check for the stream's check type.
func xzCheckSize(t byte) int {
	if t == 0 {
		return 0
	}
	return 4 << ((t - 1) / 3)
}

// decompressXZBlock decodes the block at the start of data and returns its
// data and the length of its header and compressed data (without padding
// and check).
func decompressXZBlock(data []byte) ([]byte, int, error) {
	hsize := (int(data[0]) + 1) * 4
	if len(data) < hsize || hsize < 8 {
		return nil, 0, errors.New("xz: bad block header")
	}
	hdr := data[:hsize]
	flags := hdr[1]
	p := 2
	varint := func() (uint64, error) {
		v, n := binary.Uvarint(hdr[p:])
		if n <= 0 {
			return 0, errors.New("xz: bad block header")
		}
		p += n
		return v, nil
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, err := varint(); err != nil {
				return nil, 0, err
			}
		}
	}
	var ids []uint64
	var props [][]byte
	for range int(flags&3) + 1 {
		id, err := varint()
		if err != nil {
			return nil, 0, err
		}
		n, err := varint()
		if err != nil || p+int(n) > hsize {
			return nil, 0, errors.New("xz: bad filter flags")
		}
		ids = append(ids, id)
		props = append(props, hdr[p:p+int(n)])
		p += int(n)
	}
	last := len(ids) - 1
	if ids[last] != filterLZMA2 || len(props[last]) != 1 {
		return nil, 0, fmt.Errorf("xz: filter chain %x does not end in LZMA2", ids)
	}
	bcj := false
	var start uint32
	switch {
	case len(ids) == 1:
	case len(ids) == 2 && ids[0] == filterX86 && len(props[0]) == 0:
		bcj = true
	case len(ids) == 2 && ids[0] == filterX86 && len(props[0]) == 4:
		bcj, start = true, binary.LittleEndian.Uint32(props[0])
	default:
		return nil, 0, fmt.Errorf("xz: unsupported filter chain %x", ids)
	}
	dictCap, err := lzma2DictCap(props[last][0])
	if err != nil {
		return nil, 0, err
	}
	// bytes.Reader is an io.ByteReader, so the decoder reads no further
	// than the end of the LZMA2 data, and Len tells where that is.
	br := bytes.NewReader(data[hsize:])
	r, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(br)
	if err != nil {
		return nil, 0, fmt.Errorf("xz: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, fmt.Errorf("xz: %w", err)
	}
	if bcj {
		bcjX86Decode(out, start)
	}
	return out, len(data) - br.Len(), nil
}

// lzma2DictCap decodes LZMA2's dictionary size property.
func lzma2DictCap(b byte) (int, error) {
	bits := int(b & 0x3F)
	if bits > 40 {
		return 0, errors.New("xz: bad LZMA2 dictionary size")
	}
	if bits == 40 {
		return int(lzma.MaxDictCap), nil
	}
	size := (2 | (bits & 1)) << (bits/2 + 11)
	return max(size, lzma.MinDictCap), nil
}

// bcjX86Decode reverses xz's x86 branch/call/jump filter in place, for a
// buffer that starts at stream position start. It follows xz-embedded's
// bcj_x86: relative CALL/JMP targets were made absolute to compress better.
func bcjX86Decode(buf []byte, start uint32) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	testMSByte := func(b byte) bool { return b == 0x00 || b == 0xFF }
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xFE != 0xE8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || testMSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !testMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !testMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01FFFFFF
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
