package placement

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// reason classifies (a Why constant) and explains why choose found nothing for r, naming the first filter
// that emptied the candidate set, so an operator knows what to change.
// It runs only on failure and may scan every node.
func (c *Cluster) reason(r Request) (kind, text string) {
	if len(c.all) == 0 {
		return WhyNoNodes, "no nodes"
	}
	var ready, withRuntime, candidates []*node
	for _, n := range c.all {
		if !n.Schedulable {
			continue
		}
		ready = append(ready, n)
		if !slices.Contains(n.Runtimes, r.Runtime) {
			continue
		}
		withRuntime = append(withRuntime, n)
		if !slices.Contains(r.Avoid, n.Name) {
			candidates = append(candidates, n)
		}
	}
	switch {
	case len(ready) == 0:
		return WhyNoReadyNode, "no ready node (all are down or draining)"
	case len(withRuntime) == 0:
		return WhyNoRuntime, fmt.Sprintf("no ready node offers runtime %q", r.Runtime)
	case len(candidates) == 0:
		names := make([]string, len(withRuntime))
		for i, n := range withRuntime {
			names[i] = n.Name
		}
		return WhyNoRuntime, fmt.Sprintf("no ready node offers runtime %q other than %s", r.Runtime, strings.Join(names, ", "))
	}
	most := candidates[0]
	for _, n := range candidates[1:] {
		if ahead(n, most) {
			most = n
		}
	}
	return WhyNoCapacity, fmt.Sprintf("no node has %s CPU and %s free (most free: %s with %s CPU, %s)",
		formatCPU(r.CPU), formatBytes(r.Memory), most.Name, formatCPU(most.FreeCPU), formatBytes(most.FreeMemory))
}

// formatCPU prints cores to a thousandth (the unit "m" counts in).
func formatCPU(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// formatBytes prints a size in the binary units the service model uses
// (512Mi, 1.5Gi), to two decimals at most.
func formatBytes(b int64) string {
	units := []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	for _, u := range units {
		if b >= u.size || -b >= u.size {
			v := math.Round(float64(b)/float64(u.size)*100) / 100
			return strconv.FormatFloat(v, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}
