package storage

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Azure keeps metadata names in the case the client wrote them, and a
// client that sends x-ms-meta-MyKey expects <MyKey> in a listing. Go's
// HTTP server canonicalises header names (X-Ms-Meta-Mykey) before any
// handler sees them, so the case is recovered below the server: Serve
// wraps each connection in a reader that follows the HTTP/1.1 framing of
// the requests passing through it (request line, headers, then a
// Content-Length or chunked body) and notes the x-ms-meta-* names of each
// request as written. The front end takes a request's notes (matched by
// method and target, so a request the server answered on its own cannot
// shift them) and renames its headers. Without notes (a server not
// started by Serve) names are lower-cased, so services always see names in
// one form. The notes never decide anything but the case of a name the
// server parsed itself.

// Serve serves srv on ln, recovering the case of metadata names for the
// front end. It returns what srv.Serve returns.
func Serve(srv *http.Server, ln net.Listener) error {
	next := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if next != nil {
			ctx = next(ctx, c)
		}
		if nc, ok := c.(*notingConn); ok {
			ctx = context.WithValue(ctx, notesKey{}, nc.notes)
		}
		return ctx
	}
	return srv.Serve(notingListener{ln})
}

type notesKey struct{}

type notingListener struct{ net.Listener }

func (l notingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &notingConn{Conn: c, notes: &notes{}}, nil
}

// notingConn feeds what the server reads to its notes.
type notingConn struct {
	net.Conn
	notes *notes
	p     framer // used only by Read, which the server never calls concurrently
}

var _ io.ReaderFrom = (*notingConn)(nil)

// ReadFrom keeps the connection's own, which the server uses to send a
// response from a file with sendfile(2).
func (c *notingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *notingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.feed(b[:n], c.notes)
	return n, err
}

// note is the metadata names of one request as written.
type note struct {
	method, target string
	names          []string
}

// maxNotes bounds the notes waiting on one connection: pipelined requests
// beyond it lose their case, nothing else.
const maxNotes = 32

// notes is the queue of one connection's notes, oldest first.
type notes struct {
	mu sync.Mutex
	q  []note
}

func (n *notes) push(x note) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.q) == maxNotes {
		n.q = n.q[1:]
	}
	n.q = append(n.q, x)
}

// take removes and returns the oldest note for method and target, with
// the notes older than it (requests the server answered without the
// front end).
func (n *notes) take(method, target string) ([]string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, x := range n.q {
		if x.method == method && x.target == target {
			n.q = n.q[i+1:]
			return x.names, true
		}
	}
	return nil, false
}

// framer follows the HTTP/1.1 framing of a stream of requests.
type framer struct {
	state   int
	line    []byte // the line being read, cut at maxLine bytes
	cur     note
	started bool  // the request line of cur was read
	length  int64 // Content-Length
	chunked bool
	left    int64 // bytes of body or chunk (with its CRLF) still to skip
	broken  bool  // unparseable framing: stop noting
}

const (
	stHeaders = iota
	stBody
	stChunkSize
	stChunkData
	stTrailer
)

// maxLine bounds the part of a line kept. A longer request line is cut,
// so its note matches no request and that request's names are
// lower-cased; the framing itself never depends on a long line.
const maxLine = 16 << 10

func (p *framer) feed(b []byte, n *notes) {
	for len(b) > 0 && !p.broken {
		if p.state == stBody || p.state == stChunkData {
			k := min(int64(len(b)), p.left)
			b, p.left = b[k:], p.left-k
			if p.left == 0 && p.state == stBody {
				p.state = stHeaders
			} else if p.left == 0 {
				p.state = stChunkSize
			}
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.add(b)
			return
		}
		p.add(b[:i])
		b = b[i+1:]
		line := string(bytes.TrimSuffix(p.line, []byte("\r")))
		p.line = p.line[:0]
		p.endLine(line, n)
	}
}

func (p *framer) add(b []byte) {
	if room := maxLine - len(p.line); room < len(b) {
		b = b[:max(room, 0)]
	}
	p.line = append(p.line, b...)
}

func (p *framer) endLine(line string, n *notes) {
	switch p.state {
	case stHeaders:
		switch {
		case !p.started && line == "":
			// The blank lines a client may send between requests.
		case !p.started:
			method, rest, _ := strings.Cut(line, " ")
			target, _, _ := strings.Cut(rest, " ")
			p.cur, p.started, p.length, p.chunked = note{method: method, target: target}, true, 0, false
		case line == "":
			n.push(p.cur)
			p.started = false
			switch {
			case p.chunked:
				p.state = stChunkSize
			case p.length > 0:
				p.state, p.left = stBody, p.length
			}
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			switch {
			case isMeta(name):
				p.cur.names = append(p.cur.names, name)
			case strings.EqualFold(name, "Content-Length"):
				l, err := strconv.ParseInt(value, 10, 64)
				p.length, p.broken = l, err != nil || l < 0
			case strings.EqualFold(name, "Transfer-Encoding"):
				p.chunked = strings.Contains(strings.ToLower(value), "chunked")
			}
		}
	case stChunkSize:
		size, _, _ := strings.Cut(line, ";")
		l, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		switch {
		case err != nil || l < 0:
			p.broken = true
		case l == 0:
			p.state = stTrailer
		default:
			p.state, p.left = stChunkData, l+2
		}
	case stTrailer:
		if line == "" {
			p.state = stHeaders
		}
	}
}

// rawNames renames r's x-ms-meta-* headers to the case the client wrote
// them in, or to lower case when that is unknown. When a client sent one
// name in two cases, the first wins and the values join under it.
func rawNames(r *http.Request) {
	var metaKeys []string
	for k := range r.Header {
		if isMeta(k) {
			metaKeys = append(metaKeys, k)
		}
	}
	if len(metaKeys) == 0 {
		return
	}
	raw := map[string]string{} // canonical name -> name as written
	if n, ok := r.Context().Value(notesKey{}).(*notes); ok {
		names, _ := n.take(r.Method, r.RequestURI)
		for _, name := range names {
			canon := http.CanonicalHeaderKey(name)
			if _, seen := raw[canon]; !seen {
				raw[canon] = name
			}
		}
	}
	for _, k := range metaKeys {
		name, ok := raw[k]
		if !ok {
			name = strings.ToLower(k)
		}
		if name != k {
			r.Header[name] = r.Header[k]
			delete(r.Header, k)
		}
	}
}

func isMeta(name string) bool {
	return len(name) > len(metaPrefix) && strings.EqualFold(name[:len(metaPrefix)], metaPrefix)
}
