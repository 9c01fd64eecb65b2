package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/loadgen"
)

// processRole writes a service model of one process instance of role w
// (which writes its environment to $ENVFILE, then sleeps) with extra
// model text after the role's fields, and returns its path.
func processRole(b *testing.B, c *cluster, name, extra string) (model, envFile string) {
	b.Helper()
	dir := filepath.Join(c.dir, "models", name)
	os.MkdirAll(filepath.Join(dir, "package"), 0o755)
	writeFile(b, filepath.Join(dir, "package", "README"), "the workload is sh")
	envFile = filepath.Join(dir, "env")
	return writeFile(b, filepath.Join(dir, "service.yaml"), `name: `+name+`
roles:
  - name: w
    kind: worker
    runtime: process
    package: ./package
    command: ["sh", "-c", "env > \"$ENVFILE\"; exec sleep 100000"]
    instances: 1
    settings: {ENVFILE: `+envFile+`}
`+extra), envFile
}

// BenchmarkMetadataFromInstance: requests per second and p99 latency of
// GET $WEFT_METADATA/metadata/instance, 8 clients for 5 s per round, with
// the address and token in a running process instance's environment. The
// clients run in the benchmark's process: a process instance without a
// network of its own shares the node's, so its requests take the same
// path to the agent's metadata service.
func BenchmarkMetadataFromInstance(b *testing.B) {
	c := newCluster(b, 1)
	model, envFile := processRole(b, c, "asker", "")
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	env := map[string]string{}
	pollFor(b, "the instance's environment", time.Minute, func() bool {
		data, err := os.ReadFile(envFile)
		if err != nil {
			return false
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				env[k] = v
			}
		}
		return env["WEFT_METADATA"] != "" && env["WEFT_METADATA_TOKEN"] != ""
	})
	url := env["WEFT_METADATA"] + "/metadata/instance"
	header := http.Header{"Metadata": {"true"}, "Authorization": {"Bearer " + env["WEFT_METADATA_TOKEN"]}}
	var total loadgen.Result
	var p99s []time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res := loadgen.RunWithHeader(ctx, url, header, 8, 5*time.Second)
		cancel()
		if res.Requests == 0 || res.Failures > 0 {
			b.Fatalf("metadata requests: %s", res)
		}
		total.Requests += res.Requests
		total.Duration += res.Duration
		p99s = append(p99s, res.P99)
		b.Logf("%s", res)
	}
	b.ReportMetric(float64(total.Requests)/total.Duration.Seconds(), "requests/s")
	b.ReportMetric(p50ms(p99s), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkProcessExtensionSet times a deploy giving a running process
// instance's custom-script new settings to its status at success with the
// new output: an update handler run in place, through the controller, the
// agent's heartbeat and its extension runner.
func BenchmarkProcessExtensionSet(b *testing.B) {
	c := newCluster(b, 1)
	model := func(run int) string {
		m, _ := processRole(b, c, "scripted", fmt.Sprintf(`    extensions:
      - name: custom-script
        settings: {script: "echo ran-%d"}
`, run))
		return m
	}
	c.mustWeft("deploy", "-f", model(0), "--wait", "--timeout", "60s")
	var took []time.Duration
	run := 0
	for b.Loop() {
		run++
		m := model(run)
		start := time.Now()
		c.mustWeft("deploy", "-f", m)
		want := fmt.Sprintf("ran-%d\n", run)
		pollFor(b, "custom-script at success with the new output", 2*time.Minute, func() bool {
			ins, err := c.client.Instances(context.Background(), "scripted")
			return err == nil && len(ins) == 1 && len(ins[0].Extensions) == 1 &&
				ins[0].Extensions[0].Status == api.ExtensionSuccess && ins[0].Extensions[0].Output == want
		})
		took = append(took, time.Since(start))
	}
	b.ReportMetric(p50ms(took), "set-to-success-ms")
	b.ReportMetric(0, "ns/op")
}
