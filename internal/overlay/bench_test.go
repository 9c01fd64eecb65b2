package overlay

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The overlay's cost: TCP between two endpoints on one bridge, and across
// two hosts through VXLAN, against the hosts' own underlay veth (the
// floor: the same kernel path with no bridge and no encapsulation).
//
//	go test -run '^$' -bench Overlay -benchtime 2s ./internal/overlay/
//
// Throughput streams 1 MiB per operation one way (MB/s); latency is one
// 1-byte round trip per operation (ns/op, with the p99 reported).

type benchPair struct {
	name     string
	from, to string // namespaces
	addr     string // the listener's address as the client dials it
}

func benchLab(b *testing.B) []benchPair {
	l := newLab(b)
	hs := l.hosts("h1", "h2")
	ctx := context.Background()
	for i, h := range hs {
		n := Network{VNI: 100, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{hs[1-i].addr}}
		if err := h.Apply(ctx, State{Networks: []Network{n}}); err != nil {
			b.Fatal(err)
		}
	}
	e1 := l.endpoint(hs[0], "e1", 100, "10.50.0.10")
	e2 := l.endpoint(hs[0], "e2", 100, "10.50.0.11")
	e3 := l.endpoint(hs[1], "e3", 100, "10.50.0.12")
	return []benchPair{
		{"underlay-veth", hs[0].ns, hs[1].ns, hs[1].addr.String() + ":9000"},
		{"bridge", e1, e2, "10.50.0.11:9000"},
		{"vxlan", e1, e3, "10.50.0.12:9000"},
	}
}

// connect returns a connected client in p.from and its server end in p.to.
func connect(b *testing.B, p benchPair) (client, server net.Conn) {
	b.Helper()
	var ln net.Listener
	if err := inNetns(p.to, func() (err error) {
		ln, err = net.Listen("tcp4", p.addr)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	if err := inNetns(p.from, func() (err error) {
		client, err = net.DialTimeout("tcp4", p.addr, 5*time.Second)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func BenchmarkOverlayThroughput(b *testing.B) {
	for _, p := range benchLab(b) {
		b.Run(p.name, func(b *testing.B) {
			client, server := connect(b, p)
			const chunk = 1 << 20
			done := make(chan int64, 1)
			go func() {
				n, _ := io.CopyN(io.Discard, server, int64(b.N)*chunk)
				done <- n
			}()
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := client.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-done; n != int64(b.N)*chunk {
				b.Fatalf("received %d of %d bytes", n, int64(b.N)*chunk)
			}
		})
	}
}

func BenchmarkOverlayLatency(b *testing.B) {
	for _, p := range benchLab(b) {
		b.Run(p.name, func(b *testing.B) {
			client, server := connect(b, p)
			go func() {
				one := make([]byte, 1)
				for {
					if _, err := io.ReadFull(server, one); err != nil {
						return
					}
					if _, err := server.Write(one); err != nil {
						return
					}
				}
			}()
			one := make([]byte, 1)
			rtts := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := client.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, one); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
		})
	}
}
