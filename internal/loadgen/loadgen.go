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
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxErrorKinds bounds Result.Errors: a run against a dead address would
// otherwise keep one entry per local port in the error texts.
const maxErrorKinds = 20

// Result sums up a run.
type Result struct {
	Requests int
	Failures int            // transport errors (timeouts included) and non-2xx answers
	Errors   map[string]int // error text -> count, for at most maxErrorKinds texts
	P50, P99 time.Duration  // latency of all requests, failed ones included
	Max      time.Duration
	Duration time.Duration
}

// String is one line for logs: counts, rate, latencies and the commonest
// errors.
func (r Result) String() string {
	rate := 0.0
	if r.Duration > 0 {
		rate = float64(r.Requests) / r.Duration.Seconds()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %s (%.0f/s), %d failed, p50 %s, p99 %s, max %s",
		r.Requests, r.Duration.Round(time.Millisecond), rate, r.Failures,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if r.Errors[kinds[i]] != r.Errors[kinds[j]] {
			return r.Errors[kinds[i]] > r.Errors[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	for i, k := range kinds {
		if i == 3 {
			fmt.Fprintf(&b, "; %d more kinds", len(kinds)-i)
			break
		}
		fmt.Fprintf(&b, "; %dx %s", r.Errors[k], k)
	}
	return b.String()
}

// Run sends GET url from workers goroutines (at least one), each waiting for
// its answer before the next request, until ctx ends. A request that takes
// longer than perRequestTimeout (zero: no limit) fails; one cut short by the
// end of ctx is not counted. Connections are kept alive between requests.
func Run(ctx context.Context, url string, workers int, perRequestTimeout time.Duration) Result {
	return RunWithHeader(ctx, url, nil, workers, perRequestTimeout)
}

// RunWithHeader is Run sending header with every request (a token, say).
func RunWithHeader(ctx context.Context, url string, header http.Header, workers int, perRequestTimeout time.Duration) Result {
	workers = max(workers, 1)
	transport := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: perRequestTimeout}

	var (
		mu        sync.Mutex
		res       = Result{Errors: map[string]int{}}
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker keeps its own tally, merged once at the end, so
			// that counting does not make the workers wait on each other.
			var lat []time.Duration
			errs := map[string]int{}
			for ctx.Err() == nil {
				t0 := time.Now()
				errText := get(ctx, client, url, header)
				d := time.Since(t0)
				if errText != "" && ctx.Err() != nil {
					break
				}
				lat = append(lat, d)
				if errText != "" {
					errs[errText]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Requests += len(lat)
			latencies = append(latencies, lat...)
			for text, n := range errs {
				res.Failures += n
				if len(res.Errors) < maxErrorKinds || res.Errors[text] > 0 {
					res.Errors[text] += n
				}
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		res.P50 = latencies[n/2]
		res.P99 = latencies[n*99/100]
		res.Max = latencies[n-1]
	}
	return res
}

// get returns "" on success and the failure's text otherwise.
func get(ctx context.Context, client *http.Client, url string, header http.Header) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	// The whole body is part of the answer: a backend that dies halfway
	// through it has failed the request.
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
