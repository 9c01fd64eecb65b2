package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
)

type request struct {
	flags  uint16
	typ    uint16
	handle uint64
	off    uint64
	length uint32
	data   []byte // a write's payload
}

// transmit serves requests; replies may go out of order, as the protocol
// allows, since each carries its handle.
func (s *Server) transmit(ctx context.Context, conn net.Conn) error {
	parallel := s.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	var wmu sync.Mutex
	var werr error
	reply := func(handle uint64, errno uint32, data []byte) {
		var hdr [16]byte
		binary.BigEndian.PutUint32(hdr[0:], magicReply)
		binary.BigEndian.PutUint32(hdr[4:], errno)
		binary.BigEndian.PutUint64(hdr[8:], handle)
		wmu.Lock()
		defer wmu.Unlock()
		if werr != nil {
			return
		}
		if _, err := (&net.Buffers{hdr[:], data}).WriteTo(conn); err != nil {
			werr = err
			conn.Close()
		}
	}
	size := uint64(s.Backend.Size())
	var hdr [28]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nbd: read request: %w", err)
		}
		if binary.BigEndian.Uint32(hdr[0:]) != magicRequest {
			return errors.New("nbd: bad request magic")
		}
		req := request{
			flags: binary.BigEndian.Uint16(hdr[4:]), typ: binary.BigEndian.Uint16(hdr[6:]),
			handle: binary.BigEndian.Uint64(hdr[8:]), off: binary.BigEndian.Uint64(hdr[16:]),
			length: binary.BigEndian.Uint32(hdr[24:]),
		}
		if req.typ == cmdDisc {
			return nil
		}
		errno := check(req, size)
		if req.typ == cmdWrite {
			if req.length > MaxRequest {
				return fmt.Errorf("nbd: write of %d bytes", req.length)
			}
			var err error
			if errno != 0 {
				// Refused: skip the payload to stay in step with the client.
				_, err = io.CopyN(io.Discard, conn, int64(req.length))
			} else {
				req.data, err = readPayload(conn, req.length)
			}
			if err != nil {
				return fmt.Errorf("nbd: read write payload: %w", err)
			}
		}
		if errno != 0 {
			reply(req.handle, errno, nil)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, errno := s.handle(ctx, req)
			reply(req.handle, errno, data)
		}()
	}
}

// readPayload reads the n bytes of a write, growing its buffer (from at
// most 1 MiB, doubling) as they arrive: a request header alone, whatever
// length it claims, costs no more memory than was sent.
func readPayload(r io.Reader, n uint32) ([]byte, error) {
	buf := make([]byte, 0, min(n, 1<<20))
	for len(buf) < int(n) {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(int(n)-len(buf), cap(buf)))
		}
		m, err := io.ReadFull(r, buf[len(buf):min(cap(buf), int(n))])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// check refuses requests outside the export or too large.
func check(req request, size uint64) uint32 {
	switch req.typ {
	case cmdRead, cmdWrite, cmdTrim, cmdZeroes:
		if req.off+uint64(req.length) > size || req.off+uint64(req.length) < req.off {
			if req.typ == cmdWrite || req.typ == cmdZeroes {
				return errNoSpc
			}
			return errInval
		}
		if req.typ == cmdRead && req.length > MaxRequest {
			return errInval
		}
	case cmdFlush:
	default:
		return errInval
	}
	return 0
}

func (s *Server) handle(ctx context.Context, req request) ([]byte, uint32) {
	var err error
	var data []byte
	switch req.typ {
	case cmdRead:
		data = make([]byte, req.length)
		err = s.Backend.ReadAt(ctx, data, int64(req.off))
	case cmdWrite:
		err = s.Backend.WriteAt(ctx, req.data, int64(req.off))
	case cmdTrim, cmdZeroes:
		err = s.Backend.Zero(ctx, int64(req.off), int64(req.length))
	case cmdFlush:
		err = s.Backend.Flush(ctx)
	}
	if err == nil && req.flags&cmdFlagFUA != 0 && req.typ != cmdFlush && req.typ != cmdRead {
		err = s.Backend.Flush(ctx)
	}
	if err != nil {
		if s.Log != nil {
			s.Log.Warn("nbd request failed", "export", s.Name, "type", req.typ, "offset", req.off, "length", req.length, "err", err)
		}
		if errors.Is(err, ErrFenced) {
			return nil, errPerm
		}
		return nil, errIO
	}
	return data, 0
}

// ErrFenced is what a Backend returns once another node owns the disk: the
// client gets EPERM and the guest sees its disk fail, rather than two hosts
// writing one disk.
var ErrFenced = errors.New("nbd: the disk is owned by another node")
