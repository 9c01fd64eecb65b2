package lb

import (
	"net"
	"sync/atomic"
)

// Bytes returns the bytes each endpoint carried (read from and written to
// its clients, both ways) since the balancer started, by endpoint key.
// The counts only grow, also after an endpoint is withdrawn: what a
// metering report needs to take the difference of two calls.
func (b *Balancer) Bytes() map[string]int64 {
	out := map[string]int64{}
	b.bytes.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// counter is the byte count of the endpoint key.
func (b *Balancer) counter(key string) *atomic.Int64 {
	c, ok := b.bytes.Load(key)
	if !ok {
		c, _ = b.bytes.LoadOrStore(key, new(atomic.Int64))
	}
	return c.(*atomic.Int64)
}

// countingListener counts the bytes of the HTTP connections it accepts,
// for the endpoint the listener serves at the time of the accept. (TCP
// connections are counted by pipe, as each direction ends, so that their
// copies keep the kernel's splice.)
type countingListener struct {
	net.Listener
	l *listener
}

func (cl countingListener) Accept() (net.Conn, error) {
	c, err := cl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: cl.l.b.counter(cl.l.pool.Load().key)}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}
