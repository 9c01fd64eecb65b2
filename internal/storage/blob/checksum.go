package blob

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"hash/crc64"
	"io"
	"net/http"

	"github.com/weftcloud/weft/internal/storage"
)

// crcTable is Azure's CRC64: the NVMe polynomial, as the azblob SDK computes
// it with hash/crc64 and sends little-endian in x-ms-content-crc64.
var crcTable = crc64.MakeTable(0x9A6C9329AC4BC9B5)

// inlineMax is the largest body kept inside the metadata store instead of a
// file of its own: small blobs then cost one (shared) metadata fsync.
const inlineMax = 64 << 10

// ingested is a request body that is now durable and not yet referenced.
type ingested struct {
	ext  extent
	data []byte // the bytes of an inline extent
	md5  []byte // MD5 of the body, when computed
	crc  []byte // CRC64 of the body (8 bytes little-endian), when asked for
	// volatile: the extent's file was not fsynced (a staged block); it
	// goes through syncFiles before a committed blob refers to it.
	volatile bool
}

// discard removes the file of an ingested body that will not be committed.
func (s *Service) discard(in *ingested) {
	if in != nil && !in.ext.Inline && in.ext.File != "" {
		s.files.remove([]string{in.ext.File})
	}
}

type crcHash struct{ sum uint64 }

func (h *crcHash) Write(p []byte) (int, error) {
	h.sum = crc64.Update(h.sum, crcTable, p)
	return len(p), nil
}
func (h *crcHash) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint64(b, h.sum) }
func (h *crcHash) Reset()              { h.sum = 0 }
func (h *crcHash) Size() int           { return 8 }
func (h *crcHash) BlockSize() int      { return 1 }

var _ hash.Hash = (*crcHash)(nil)

// wantedChecksums parses Content-MD5 and x-ms-content-crc64 of a request.
func wantedChecksums(h http.Header) (md5sum, crc []byte, err error) {
	if v := h.Get("Content-MD5"); v != "" {
		md5sum, err = base64.StdEncoding.DecodeString(v)
		if err != nil || len(md5sum) != md5.Size {
			return nil, nil, errHeader("Content-MD5")
		}
	}
	if v := h.Get("x-ms-content-crc64"); v != "" {
		crc, err = base64.StdEncoding.DecodeString(v)
		if err != nil || len(crc) != 8 {
			return nil, nil, errHeader("x-ms-content-crc64")
		}
	}
	return md5sum, crc, nil
}

// ingest stores the request body: small bodies stay in memory to be stored
// inline with the metadata, larger ones stream to a new file, fsynced when
// durable (see writeNew; staged blocks are not, Put Block List syncs them). It
// validates Content-MD5 and x-ms-content-crc64; computeMD5 asks for the MD5
// even when the client sent none (Put Blob stores it). For bodies past
// inlineMax that request is ignored: MD5 costs more CPU than the rest of an
// upload together (half the time of a 1 MiB Put Blob here), so a large blob
// carries an MD5 only when the client supplies or validates one.
func (s *Service) ingest(c *call, limit int64, computeMD5, durable bool) (*ingested, error) {
	wantMD5, wantCRC, err := wantedChecksums(c.r.Header)
	if err != nil {
		return nil, err
	}
	return s.ingestReader(c.r.Body, c.r.ContentLength, limit, computeMD5, durable, wantMD5, wantCRC)
}

// ingestReader is ingest over any stream of length size (-1: unknown).
func (s *Service) ingestReader(body io.Reader, size, limit int64, computeMD5, durable bool, wantMD5, wantCRC []byte) (*ingested, error) {
	if size > limit {
		return nil, errTooLarge
	}
	var hashes []hash.Hash
	var mh hash.Hash
	var ch *crcHash
	small := size >= 0 && size <= inlineMax
	if (computeMD5 && small) || wantMD5 != nil {
		mh = md5.New()
		hashes = append(hashes, mh)
	}
	if wantCRC != nil {
		ch = &crcHash{}
		hashes = append(hashes, ch)
	}
	in := &ingested{}
	if small {
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, storage.BodyError(err)
		}
		for _, h := range hashes {
			h.Write(buf)
		}
		in.ext = extent{File: newID(), Len: size, Inline: true}
		in.data = buf
	} else {
		id, n, err := s.files.writeNew(body, limit, durable, hashes...)
		if err != nil {
			return nil, err
		}
		in.ext = extent{File: id, Len: n}
		in.volatile = !durable
		if size >= 0 && n != size {
			s.discard(in)
			return nil, storage.Errorf(http.StatusBadRequest, "InvalidInput", "The body is shorter than Content-Length.")
		}
	}
	if mh != nil {
		in.md5 = mh.Sum(nil)
		if wantMD5 != nil && !bytes.Equal(in.md5, wantMD5) {
			s.discard(in)
			return nil, storage.Errorf(http.StatusBadRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
		}
	}
	if ch != nil {
		in.crc = ch.Sum(nil)
		if !bytes.Equal(in.crc, wantCRC) {
			s.discard(in)
			return nil, storage.Errorf(http.StatusBadRequest, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.")
		}
	}
	return in, nil
}

// writeChecksums answers the checksums Azure returns for a write.
func writeChecksums(h http.Header, in *ingested) {
	if in.md5 != nil {
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString(in.md5))
	}
	if in.crc != nil {
		h.Set("x-ms-content-crc64", base64.StdEncoding.EncodeToString(in.crc))
	}
}
