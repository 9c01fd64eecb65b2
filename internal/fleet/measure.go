package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/client"
)

// reconcileMetric is the controller's histogram of reconcile passes
// (internal/fabric's figures).
const reconcileMetric = "weft_fabric_reconcile_duration_seconds"

// histogram is a Prometheus histogram as scraped: cumulative counts by
// upper bound, in bound order.
type histogram struct {
	bounds []float64 // seconds; the last is +Inf
	counts []float64
}

// scrapeHistogram reads metric's buckets from a server's /metrics.
func scrapeHistogram(ctx context.Context, c *client.Client, metric string) (histogram, error) {
	body, err := c.Metrics(ctx)
	if err != nil {
		return histogram{}, fmt.Errorf("fleet: scrape: %w", err)
	}
	defer body.Close()
	return parseHistogram(body, metric)
}

// parseHistogram reads metric's buckets from the text exposition format.
func parseHistogram(r io.Reader, metric string) (histogram, error) {
	var h histogram
	prefix := metric + `_bucket{le="`
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, value, ok := strings.Cut(line, `"} `)
		if !ok {
			return histogram{}, fmt.Errorf("fleet: metric line %q", sc.Text())
		}
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = math.Inf(1), nil
		}
		n, err2 := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil || err2 != nil {
			return histogram{}, fmt.Errorf("fleet: metric line %q", sc.Text())
		}
		h.bounds = append(h.bounds, bound)
		h.counts = append(h.counts, n)
	}
	if err := sc.Err(); err != nil {
		return histogram{}, fmt.Errorf("fleet: scrape: %w", err)
	}
	if len(h.bounds) == 0 {
		return histogram{}, fmt.Errorf("fleet: no %s in the metrics", metric)
	}
	return h, nil
}

// heartbeatsMetric counts the heartbeats a controller took.
const heartbeatsMetric = "weft_fabric_heartbeats_total"

// nodesDownMetric and placementsMetric count the nodes a controller
// declared down and the instances it placed.
const (
	nodesDownMetric  = "weft_fabric_nodes_declared_down_total"
	placementsMetric = "weft_fabric_placements_total"
)

// scrapeCounter is the sum of metric's series on a server's /metrics.
func scrapeCounter(ctx context.Context, c *client.Client, metric string) (float64, error) {
	body, err := c.Metrics(ctx)
	if err != nil {
		return 0, fmt.Errorf("fleet: scrape: %w", err)
	}
	defer body.Close()
	return parseCounter(body, metric)
}

// parseCounter sums metric's series in the text exposition format.
func parseCounter(r io.Reader, metric string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), metric)
		if !ok || (line != "" && line[0] != '{' && line[0] != ' ') {
			continue
		}
		fields := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if len(fields) == 0 {
			return 0, fmt.Errorf("fleet: metric line %q", sc.Text())
		}
		n, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("fleet: metric line %q", sc.Text())
		}
		sum += n
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("fleet: scrape: %w", err)
	}
	return sum, nil
}

// since is what was observed after earlier (a scrape of the same series);
// a zero earlier leaves h as it is.
func (h histogram) since(earlier histogram) histogram {
	if len(earlier.counts) != len(h.counts) {
		return h
	}
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i] - earlier.counts[i]
	}
	return out
}

// plus adds the observations of another server's histogram of the same buckets.
func (h histogram) plus(o histogram) histogram {
	if len(h.counts) == 0 {
		return o
	}
	if len(o.counts) != len(h.counts) {
		return h
	}
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i] + o.counts[i]
	}
	return out
}

func (h histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket it falls in, and the highest finite bound
// when it falls in +Inf. NaN without observations.
func (h histogram) quantile(q float64) float64 {
	total := h.total()
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		if math.IsInf(h.bounds[i], 1) {
			return h.bounds[i-1]
		}
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = h.bounds[i-1], h.counts[i-1]
		}
		if c == below {
			return h.bounds[i]
		}
		return lower + (h.bounds[i]-lower)*(rank-below)/(c-below)
	}
	return h.bounds[len(h.bounds)-1]
}

// latencies collects API call durations by kind.
type latencies struct {
	mu   sync.Mutex
	byOp map[string][]time.Duration
	errs map[string]int
}

func newLatencies() *latencies {
	return &latencies{byOp: map[string][]time.Duration{}, errs: map[string]int{}}
}

// time runs call and records how long it took under op.
func (l *latencies) time(op string, call func() error) error {
	began := time.Now()
	err := call()
	d := time.Since(began)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if !errors.Is(err, context.Canceled) { // the harness stopped asking
			l.errs[op]++
		}
		return err
	}
	l.byOp[op] = append(l.byOp[op], d)
	return nil
}

// p99 is the 99th percentile of op's calls, or of all calls when op is "".
func (l *latencies) p99(op string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []time.Duration
	for name, ds := range l.byOp {
		if op == "" || name == op {
			all = append(all, ds...)
		}
	}
	return percentile(all, 0.99)
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(math.Ceil(q*float64(len(ds))))-1)]
}

// procStatus reads a process's resident memory now and at its peak
// (VmRSS, VmHWM in /proc/PID/status), in bytes.
func procStatus(pid int) (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("fleet: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's CPU times; 100 on
// every Linux architecture Go supports.
const clockTick = 100

// procCPU is the CPU time a process has used (user and system).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("fleet: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after it. utime and stime are fields 14 and 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("fleet: /proc/%d/stat: too short", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}
