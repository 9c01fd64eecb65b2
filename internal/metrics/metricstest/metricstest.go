// Package metricstest scrapes a real /metrics endpoint in tests and reads
// its figures, parsed with the Prometheus text parser: what a Prometheus
// server would read.
package metricstest

import (
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a scrape: every metric family by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url with c (http.DefaultClient when nil), with the bearer
// token when not empty, and parses the answer; anything but a 200 in the
// text format fails t.
func Scrape(t testing.TB, c *http.Client, url, token string) Families {
	t.Helper()
	f, err := TryScrape(c, url, token)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TryScrape is Scrape returning its error.
func TryScrape(c *http.Client, url, token string) (Families, error) {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metricstest: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metricstest: scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metricstest: parse %s: %w", url, err)
	}
	return fams, nil
}

// Value is the value of the metric name whose labels include every pair
// of labels (name, value, name, value...), summed over all that match: a
// counter's or gauge's value, a histogram's count of observations. ok is
// false when the family or no matching metric is there.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	fam, found := f[name]
	if !found {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v, ok
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
