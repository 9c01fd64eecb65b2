package lb

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchGet sends GET url from 4 clients per CPU and reports requests per
// second and the 99th percentile latency.
func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
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
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkProxyHTTP: requests through the balancer to 3 backends.
func BenchmarkProxyHTTP(b *testing.B) {
	bal := newBalancer(b)
	var bes []Backend
	for i := range 3 {
		bes = append(bes, newBackend(b, fmt.Sprint("b", i)).Backend)
	}
	benchGet(b, publish(b, bal, "bench", bes...)+"/")
}

// BenchmarkDirectHTTP: the same requests straight to one backend, the floor.
func BenchmarkDirectHTTP(b *testing.B) {
	benchGet(b, "http://"+newBackend(b, "direct").Addr+"/")
}
