package lb

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteMetrics writes Stats in the Prometheus text exposition format, for a
// /metrics page; it needs no client library. Backends are in ID order, so
// the text of equal stats is equal.
func (b *Balancer) WriteMetrics(w io.Writer) error {
	stats := b.Stats()
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string, each func(st EndpointStats, labels string)) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, st := range stats {
			each(st, fmt.Sprintf(`endpoint="%s",port="%d",protocol="%s"`, escapeLabel(st.Key), st.Port, st.Protocol))
		}
	}
	family("weft_lb_requests_total", "counter", "Requests (HTTP) or connections (TCP) accepted.", func(st EndpointStats, l string) {
		fmt.Fprintf(bw, "weft_lb_requests_total{%s} %d\n", l, st.Requests)
	})
	family("weft_lb_failures_total", "counter", "Requests answered 502 or 503 by the balancer, or connections it could not place.", func(st EndpointStats, l string) {
		fmt.Fprintf(bw, "weft_lb_failures_total{%s} %d\n", l, st.Failures)
	})
	family("weft_lb_backend_active", "gauge", "Requests or connections in flight to a backend.", func(st EndpointStats, l string) {
		ids := make([]string, 0, len(st.Active))
		for id := range st.Active {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fmt.Fprintf(bw, "weft_lb_backend_active{%s,backend=\"%s\"} %d\n", l, escapeLabel(id), st.Active[id])
		}
	})
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("lb: write metrics: %w", err)
	}
	return nil
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
