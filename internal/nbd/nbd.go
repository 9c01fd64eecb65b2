// Package nbd is a Network Block Device server (the fixed-newstyle
// handshake and simple replies of the NBD protocol, as QEMU's own NBD client
// speaks it), so a disk that lives elsewhere, such as a page blob in the
// storage service, can back a VM: QEMU connects to the node agent's socket.
//
// https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Backend is the disk behind an export. Offsets and lengths are within
// Size. Calls may come concurrently, never for overlapping ranges at once
// from a well-behaved client.
type Backend interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Zero makes a range read as zeros (trim and write-zeroes).
	Zero(ctx context.Context, off, length int64) error
	// Flush makes every acknowledged write durable.
	Flush(ctx context.Context) error
}

// Protocol constants.
const (
	magicNBD      = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt      = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply = 0x3e889045565a9
	magicRequest  = 0x25609513
	magicReply    = 0x67446698

	flagFixedNewstyle = 1 << 0
	flagNoZeroes      = 1 << 1

	optExportName = 1
	optAbort      = 2
	optList       = 3
	optInfo       = 6
	optGo         = 7

	repAck         = 1
	repServer      = 2
	repInfo        = 3
	repErrUnsup    = 1<<31 + 1
	repErrInvalid  = 1<<31 + 3
	repErrUnknown  = 1<<31 + 6
	infoExport     = 0
	infoBlockSize  = 3
	transHasFlags  = 1 << 0
	transSendFlush = 1 << 2
	transSendFUA   = 1 << 3
	transSendTrim  = 1 << 5
	transSendZero  = 1 << 6

	cmdRead    = 0
	cmdWrite   = 1
	cmdDisc    = 2
	cmdFlush   = 3
	cmdTrim    = 4
	cmdZeroes  = 6
	cmdFlagFUA = 1 << 0

	errPerm  = 1
	errIO    = 5
	errNoMem = 12
	errInval = 22
	errNoSpc = 28

	// MaxRequest is the largest read or write accepted (QEMU sends at most 32 MiB).
	MaxRequest = 32 << 20
	// BlockSize is the minimum and preferred request alignment advertised:
	// page blobs are written in 512-byte pages.
	BlockSize = 512
)

// Server serves one export name to any number of connections.
type Server struct {
	Name    string
	Backend Backend
	Log     *slog.Logger
	// Parallel bounds the requests of one connection handled at once (default 8).
	Parallel int
}

// Serve accepts connections on ln until ctx ends or ln fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nbd: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeConn(ctx, conn); err != nil && s.Log != nil {
				s.Log.Warn("nbd connection ended", "export", s.Name, "err", err)
			}
		}()
	}
}

// ServeConn runs the handshake and then serves requests until the client
// disconnects, ctx ends, or the connection fails. It closes conn.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	return s.serve(ctx, conn, true)
}

// ServeTransmission serves requests on a connection that starts in the
// transmission phase, with no handshake: the kernel's NBD client, given
// its socket with the NBD_SET_SOCK ioctl, learnt the export's size and
// flags through ioctls of its own (NBD_SET_SIZE, NBD_SET_FLAGS with
// TransmissionFlags) and speaks requests at once. Otherwise it is
// ServeConn: it returns nil once the client disconnects (NBD_CMD_DISC or
// end of stream) or ctx ends, and closes conn.
func (s *Server) ServeTransmission(ctx context.Context, conn net.Conn) error {
	return s.serve(ctx, conn, false)
}

func (s *Server) serve(ctx context.Context, conn net.Conn, handshake bool) error {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); conn.Close() }()
	if handshake {
		ok, err := s.handshake(conn)
		if err != nil || !ok {
			return err
		}
	}
	return s.transmit(ctx, conn)
}

// handshake negotiates options; ok is false when the client aborted.
func (s *Server) handshake(conn net.Conn) (ok bool, err error) {
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], magicNBD)
	binary.BigEndian.PutUint64(hello[8:], magicOpt)
	binary.BigEndian.PutUint16(hello[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := conn.Write(hello[:]); err != nil {
		return false, fmt.Errorf("nbd: handshake: %w", err)
	}
	var clientFlags uint32
	if err := binary.Read(conn, binary.BigEndian, &clientFlags); err != nil {
		return false, fmt.Errorf("nbd: handshake: %w", err)
	}
	if clientFlags&flagFixedNewstyle == 0 {
		return false, errors.New("nbd: the client does not speak fixed newstyle")
	}
	noZeroes := clientFlags&flagNoZeroes != 0
	for {
		var hdr struct {
			Magic  uint64
			Option uint32
			Length uint32
		}
		if err := binary.Read(conn, binary.BigEndian, &hdr); err != nil {
			return false, fmt.Errorf("nbd: option: %w", err)
		}
		if hdr.Magic != magicOpt {
			return false, errors.New("nbd: option without IHAVEOPT")
		}
		if hdr.Length > 64<<10 {
			return false, fmt.Errorf("nbd: option of %d bytes", hdr.Length)
		}
		data := make([]byte, hdr.Length)
		if _, err := io.ReadFull(conn, data); err != nil {
			return false, fmt.Errorf("nbd: option: %w", err)
		}
		switch hdr.Option {
		case optExportName:
			if string(data) != s.Name && string(data) != "" {
				return false, fmt.Errorf("nbd: no export %q", data)
			}
			reply := make([]byte, 10, 10+124)
			binary.BigEndian.PutUint64(reply[0:], uint64(s.Backend.Size()))
			binary.BigEndian.PutUint16(reply[8:], s.TransmissionFlags())
			if !noZeroes {
				reply = append(reply, make([]byte, 124)...)
			}
			_, err := conn.Write(reply)
			return err == nil, err
		case optAbort:
			optReply(conn, hdr.Option, repAck, nil)
			return false, nil
		case optList:
			name := make([]byte, 4+len(s.Name))
			binary.BigEndian.PutUint32(name, uint32(len(s.Name)))
			copy(name[4:], s.Name)
			if err := optReply(conn, hdr.Option, repServer, name); err != nil {
				return false, err
			}
			if err := optReply(conn, hdr.Option, repAck, nil); err != nil {
				return false, err
			}
		case optInfo, optGo:
			name, ok := parseInfoRequest(data)
			switch {
			case !ok:
				err = optReply(conn, hdr.Option, repErrInvalid, nil)
			case name != s.Name && name != "":
				err = optReply(conn, hdr.Option, repErrUnknown, nil)
			default:
				err = s.sendInfo(conn, hdr.Option)
				if err == nil && hdr.Option == optGo {
					return true, nil
				}
			}
			if err != nil {
				return false, err
			}
		default: // structured replies, meta contexts, TLS: not offered
			if err := optReply(conn, hdr.Option, repErrUnsup, nil); err != nil {
				return false, err
			}
		}
	}
}

// parseInfoRequest reads NBD_OPT_INFO/GO data: the export name and the
// information types asked for (which are ignored: the export and block size
// information are always sent).
func parseInfoRequest(data []byte) (string, bool) {
	if len(data) < 6 {
		return "", false
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(len(data)) < 4+uint64(n)+2 {
		return "", false
	}
	return string(data[4 : 4+n]), true
}

func (s *Server) sendInfo(conn net.Conn, opt uint32) error {
	export := make([]byte, 12)
	binary.BigEndian.PutUint16(export[0:], infoExport)
	binary.BigEndian.PutUint64(export[2:], uint64(s.Backend.Size()))
	binary.BigEndian.PutUint16(export[10:], s.TransmissionFlags())
	if err := optReply(conn, opt, repInfo, export); err != nil {
		return err
	}
	block := make([]byte, 14)
	binary.BigEndian.PutUint16(block[0:], infoBlockSize)
	binary.BigEndian.PutUint32(block[2:], BlockSize)
	binary.BigEndian.PutUint32(block[6:], 4096)
	binary.BigEndian.PutUint32(block[10:], MaxRequest)
	if err := optReply(conn, opt, repInfo, block); err != nil {
		return err
	}
	return optReply(conn, opt, repAck, nil)
}

// TransmissionFlags are the export's transmission flags, as the handshake
// sends them (NBD_FLAG_HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM,
// SEND_WRITE_ZEROES): what a client configured without one, such as the
// kernel's, is told with NBD_SET_FLAGS.
func (s *Server) TransmissionFlags() uint16 {
	return transHasFlags | transSendFlush | transSendFUA | transSendTrim | transSendZero
}

func optReply(w io.Writer, opt, typ uint32, data []byte) error {
	b := make([]byte, 20+len(data))
	binary.BigEndian.PutUint64(b[0:], magicOptReply)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], typ)
	binary.BigEndian.PutUint32(b[16:], uint32(len(data)))
	copy(b[20:], data)
	_, err := w.Write(b)
	if err != nil {
		return fmt.Errorf("nbd: option reply: %w", err)
	}
	return nil
}
