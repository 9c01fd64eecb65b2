package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// BenchmarkPersistentContainerRelocation: a persistent container instance
// on a 1 GiB drive loses its host (its node's agent, shim and container
// killed); measured from the node declared down to the instance running on
// the other node and having written on its drive there (the keeper image
// notes its instance ID on the drive when it starts).
//
//	go test -run '^$' -bench PersistentContainerRelocation -benchtime 3x -timeout 30m ./e2e/
func BenchmarkPersistentContainerRelocation(b *testing.B) {
	requireRunc(b)
	requireDrives(b)
	c := newCluster(b, 2, storageFlags(b)...)
	c.importKeeperImage()
	model := writeFile(b, filepath.Join(c.dir, "keeper.yaml"), `name: keeper
roles:
  - name: db
    kind: worker
    runtime: container
    image: keeper
    instances: 1
    persistence: persistent
    size: {cpu: 0.1, memory: 64Mi}
    drives: [{name: state, size: 1Gi, mount: /data}]
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "120s")
	ctx := context.Background()
	// wrote says whether an instance other than was, on a node other than
	// from, noted itself on the drive.
	wrote := func(was, from string) bool {
		for _, in := range c.instances("keeper") {
			if in.ID == was || in.Node == from || in.State != api.StateRunning {
				continue
			}
			who, err := c.driveFile(in, "state", "who")
			if err == nil && strings.HasPrefix(who, in.ID+" ") {
				return true
			}
		}
		return false
	}
	pollFor(b, "the first instance on its drive", 2*time.Minute, func() bool { return wrote("", "") })
	var downs, relocs []time.Duration
	for b.Loop() {
		in := c.instances("keeper")[0]
		victim := in.Node
		start := time.Now()
		c.kill9(c.agents[victim])
		for _, pid := range pidsUnder(filepath.Join(c.dir, victim)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		pollFor(b, "the node declared down", time.Minute, func() bool {
			n, err := c.client.Node(ctx, victim)
			return err == nil && n.State == api.NodeDown
		})
		down := time.Now()
		pollFor(b, "the instance writing on its drive on the other node", 3*time.Minute, func() bool { return wrote(in.ID, victim) })
		reloc := time.Since(down)
		downs = append(downs, down.Sub(start))
		relocs = append(relocs, reloc)
		b.Logf("%s: declared down after %v, the instance wrote on its drive %v later",
			victim, down.Sub(start).Round(time.Millisecond), reloc.Round(time.Millisecond))

		c.startAgent(victim)
		c.waitFor("the node back", 30*time.Second, func() bool {
			n, err := c.client.Node(ctx, victim)
			return err == nil && n.State == api.NodeReady
		})
	}
	b.ReportMetric(p50ms(downs), "down-ms")
	b.ReportMetric(p50ms(relocs), "relocate-ms")
	b.ReportMetric(0, "ns/op") // the loop also brings the node back; the two halves are the figures
}
