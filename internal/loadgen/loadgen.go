// Package loadgen is a small HTTP load generator: a few workers loop GET
// requests until told to stop, counting failures and latencies. The
// end-to-end tests and `make bench` use it to show that rolling upgrades and
// node failures lose no request.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Result sums up a run.
type Result struct {
	Requests int
	Failures int            // transport errors and non-2xx answers
	Errors   map[string]int // a sample of error texts, by count
	P50, P99 time.Duration
	Max      time.Duration
	Duration time.Duration
}

func (r Result) String() string {
	rate := 0.0
	if r.Duration > 0 {
		rate = float64(r.Requests) / r.Duration.Seconds()
	}
	return fmt.Sprintf("%d requests in %s (%.0f/s), %d failed, p50 %s, p99 %s, max %s",
		r.Requests, r.Duration.Round(time.Millisecond), rate, r.Failures,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

// Run sends GET url from workers goroutines until ctx ends.
func Run(ctx context.Context, url string, workers int, perRequestTimeout time.Duration) Result {
	transport := &http.Transport{MaxIdleConnsPerHost: workers, MaxIdleConns: workers}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: perRequestTimeout}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		res       = Result{Errors: map[string]int{}}
		wg        sync.WaitGroup
	)
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				errText := get(ctx, client, url)
				d := time.Since(t0)
				if errText != "" && ctx.Err() != nil {
					return // cut short by the end of the run, not a failure
				}
				mu.Lock()
				res.Requests++
				latencies = append(latencies, d)
				if errText != "" {
					res.Failures++
					if len(res.Errors) < 20 || res.Errors[errText] > 0 {
						res.Errors[errText]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	if n := len(latencies); n > 0 {
		res.P50 = latencies[n/2]
		res.P99 = latencies[(n*99)/100]
		res.Max = latencies[n-1]
	}
	return res
}

// get returns "" on success and the error's text otherwise.
func get(ctx context.Context, client *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.Status
	}
	if err != nil {
		return err.Error()
	}
	return ""
}
