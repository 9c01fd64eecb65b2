package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
)

// prober checks an instance's health the way its role says.
type prober struct {
	interval, timeout time.Duration
	failures          int
	check             func(ctx context.Context) error
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	// A redirect is an answer: the instance is up.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// newProber returns nil when the role has nothing to probe: the instance is
// healthy while it runs. A role with endpoints but no probe gets a TCP probe
// on its first endpoint.
func newProber(role api.RoleSpec, host string, ports map[string]int, dir string) *prober {
	h := role.Health
	if h == nil {
		if len(role.Endpoints) == 0 {
			return nil
		}
		h = &api.HealthCheck{TCP: &api.TCPProbe{Endpoint: role.Endpoints[0].Name}}
	}
	p := &prober{interval: time.Duration(h.Interval), timeout: time.Duration(h.Timeout), failures: h.Failures}
	if p.interval <= 0 {
		p.interval = time.Second
	}
	if p.timeout <= 0 {
		p.timeout = time.Second
	}
	if p.failures <= 0 {
		p.failures = 3
	}
	addr := func(endpoint string) string { return net.JoinHostPort(host, strconv.Itoa(ports[endpoint])) }
	switch {
	case h.HTTP != nil:
		url := "http://" + addr(h.HTTP.Endpoint) + h.HTTP.Path
		p.check = func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := probeClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 400 {
				return fmt.Errorf("GET %s: %s", h.HTTP.Path, resp.Status)
			}
			return nil
		}
	case h.TCP != nil:
		target := addr(h.TCP.Endpoint)
		p.check = func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				return err
			}
			return c.Close()
		}
	case len(h.Exec) > 0:
		p.check = func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, h.Exec[0], h.Exec[1:]...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, truncate(string(out), 200))
			}
			return nil
		}
	default:
		return nil
	}
	return p
}

func (p *prober) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.check(ctx)
}

// grace is how long a new instance may fail its probe before it counts:
// time to start up.
func (p *prober) grace() time.Duration {
	return max(10*time.Second, time.Duration(p.failures)*p.interval)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
