package lb

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"
)

func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			t0 := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkProxyHTTP: requests through the balancer to 3 backends.
func BenchmarkProxyHTTP(b *testing.B) {
	bal := newBalancer(b)
	port := freePort(b)
	var bes []Backend
	for i := 0; i < 3; i++ {
		be, _ := backend(b, fmt.Sprint(i))
		bes = append(bes, be)
	}
	bal.Update([]Endpoint{{Port: port, Backends: bes}})
	benchGet(b, fmt.Sprintf("http://127.0.0.1:%d/", port))
}

// BenchmarkDirectHTTP: the same requests straight to one backend, the floor.
func BenchmarkDirectHTTP(b *testing.B) {
	be, _ := backend(b, "direct")
	benchGet(b, "http://"+be.Addr+"/")
}
