package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/weftcloud/weft/internal/storage/placement"
)

// BenchmarkStorageTakeover kills the storage primary of three `weft
// server` processes with SIGKILL, once per round, and times from the kill
// until (a) the placement names another primary under a higher epoch and
// (b) a blob written through each surviving server's storage endpoint is
// acknowledged: the new primary's own, and the other's, which passes
// requests on to the primary. The writers try every 20 ms without the
// SDK's own retries, so (b) is the storage's take-over and not a client's
// back-off. The killed server is started again and copied back into the
// in-sync set before the next round. Run it with -benchtime Nx for N
// rounds; each logs one line.
func BenchmarkStorageTakeover(b *testing.B) {
	c := newServersWith(b, 3, storageFlags(b))
	ctx := context.Background()
	keys := c.storageAccount("bench")
	var names []string
	for name := range c.servers {
		names = append(names, name)
	}
	slices.Sort(names)
	// Any server's storage serves every account.
	blobsVia := map[string]*azblob.Client{}
	for _, via := range names {
		cs := connectionStringAt(b, keys.ConnectionString, lbHost(via))
		noRetries := &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
		var err error
		if blobsVia[via], err = azblob.NewClientFromConnectionString(cs, noRetries); err != nil {
			b.Fatal(err)
		}
	}

	var placed, direct, forwarded []time.Duration
	leaderToo := 0
	for round := 1; b.Loop(); round++ {
		old := c.storageInSync(2 * time.Minute).Config
		leader := c.leader()
		container := fmt.Sprintf("round%d", round)
		if _, err := blobsVia[names[0]].CreateContainer(ctx, container, nil); err != nil {
			b.Fatalf("a write before the kill: %v", err)
		}

		victim := c.servers[old.Primary]
		killed := time.Now()
		c.kill9(victim)
		// until polls cond every 20 ms and returns the time from the kill
		// to when it held, 0 if it did not within 2 minutes.
		until := func(cond func() bool) time.Duration {
			for time.Since(killed) < 2*time.Minute {
				if cond() {
					return time.Since(killed)
				}
				time.Sleep(20 * time.Millisecond)
			}
			return 0
		}
		var took, elected time.Duration
		var cfg placement.Config
		wrote := map[string]time.Duration{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		if leader == old.Primary {
			// The new leader counts the primary's silence from when it
			// took over: the election comes first.
			wg.Go(func() {
				elected = until(func() bool { l := c.leader(); return l != "" && l != leader })
			})
		}
		wg.Go(func() {
			took = until(func() bool {
				cfg = c.storagePlacement().Config
				return cfg.Epoch > old.Epoch && cfg.Primary != "" && cfg.Primary != old.Primary
			})
		})
		for _, via := range names {
			if via == old.Primary {
				continue
			}
			wg.Go(func() {
				i := 0
				d := until(func() bool {
					i++
					ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					defer cancel()
					_, err := blobsVia[via].UploadBuffer(ctx, container, fmt.Sprintf("%s-%d", via, i), []byte("written after the kill"), nil)
					return err == nil
				})
				mu.Lock()
				wrote[via] = d
				mu.Unlock()
			})
		}
		wg.Wait()
		var fwd string
		for via, d := range wrote {
			if d == 0 {
				b.Fatalf("round %d: no write through %s within 2 minutes of killing the primary %s (placement %+v)", round, via, old.Primary, cfg)
			}
			if via != cfg.Primary {
				fwd = via
			}
		}
		if took == 0 {
			b.Fatalf("round %d: no other primary within 2 minutes of killing %s (placement %+v)", round, old.Primary, cfg)
		}
		also := "not the Raft leader"
		if leader == old.Primary {
			leaderToo++
			also = fmt.Sprintf("the Raft leader too, another after %v", elected.Round(time.Millisecond))
		}
		b.Logf("round %d: killed %s (epoch %d; %s); %s primary of epoch %d after %v; first write through %s after %v, through %s after %v",
			round, old.Primary, old.Epoch, also, cfg.Primary, cfg.Epoch, took.Round(time.Millisecond),
			cfg.Primary, wrote[cfg.Primary].Round(time.Millisecond), fwd, wrote[fwd].Round(time.Millisecond))
		placed = append(placed, took)
		direct = append(direct, wrote[cfg.Primary])
		forwarded = append(forwarded, wrote[fwd])
		c.startReplica(old.Primary, victim.addr, strings.Split(c.apiArg, ","))
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"takeover", placed}, {"write", direct}, {"fwd-write", forwarded}} {
		slices.Sort(m.ds)
		b.ReportMetric(float64(m.ds[(len(m.ds)-1)/2].Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(m.ds[len(m.ds)-1].Microseconds())/1000, m.name+"-max-ms")
	}
	b.ReportMetric(float64(leaderToo), "leader-kills")
	b.ReportMetric(0, "ns/op") // the rounds include restarts and copies; the times above are the figures
}
