package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/weftcloud/weft/internal/storage/placement"
)

// TestPartitionedStoragePrimary cuts the host of the storage primary off
// from the other two servers of three, each on its own host with its
// storage on. The majority makes one of its servers the primary under a
// newer epoch, serves every write acknowledged before the cut (to a
// client that asks from the moment of the cut: a majority server holds
// its requests at the cut-off primary only until another is named) and
// takes new ones; the cut-off primary acknowledges no write, neither
// right after the cut (its replicas cannot answer) nor once the other
// primary serves (no split brain). When the link heals, the old primary
// is copied again, rejoins the in-sync set and serves what the majority
// took.
//
// Both cases run: the primary is a follower (it stops serving once it has
// not heard from the leader for a lease, and the leader's probes fail for
// two); and the primary is the Raft leader too (the majority must first
// elect a leader, which waits out two leases before it promotes; the old
// leader steps down and then still counts a lease from that moment).
// Each arranges its case by moving the Raft leadership if needed; the first
// leader makes its own storage the primary, so "leads" rarely has to.
func TestPartitionedStoragePrimary(t *testing.T) {
	netnsTest(t)
	for _, tc := range []struct {
		name  string
		leads bool
	}{
		{"primary follows", false},
		{"primary leads", true},
	} {
		t.Run(tc.name, func(t *testing.T) { partitionStoragePrimary(t, tc.leads) })
	}
}

// partitionStoragePrimary is one case of TestPartitionedStoragePrimary:
// the storage primary is the Raft leader too, or not.
func partitionStoragePrimary(t *testing.T, leads bool) {
	n := newNetwork(t)
	hosts := []*host{n.addHost("h1"), n.addHost("h2"), n.addHost("h3")}
	byName := map[string]*host{}
	for _, h := range hosts {
		byName[h.name] = h
	}
	c := newHostServers(t, n, hosts, "--no-storage=false")
	keys := c.storageAccount("app")
	before := c.storageInSync(60 * time.Second)
	// Moving the leadership normally leaves the storage primary where it
	// is (inSync reads it again); a move onto it may take a few tries
	// (either follower may win).
	var leader string
	for moves := 0; ; moves++ {
		c.waitFor("a leader", 10*time.Second, func() bool { leader = c.leader(); return leader != "" })
		if (leader == before.Config.Primary) == leads {
			break
		}
		if moves == 8 {
			t.Fatalf("after %d moves of the Raft leadership, %s leads and %s is the storage primary", moves, leader, before.Config.Primary)
		}
		t.Logf("moving the Raft leadership off %s (storage primary %s)", leader, before.Config.Primary)
		c.moveLeadership(byName[leader], hosts)
		before = c.storageInSync(60 * time.Second)
	}
	var old *host
	var rest []*host
	for _, h := range hosts {
		if h.name == before.Config.Primary {
			old = h
		} else {
			rest = append(rest, h)
		}
	}
	t.Logf("storage primary %s (epoch %d), Raft leader %s", old.name, before.Config.Epoch, leader)

	// Written through the primary's own endpoints: acknowledged by it,
	// so held by every server in its in-sync set.
	cutOff := newStorageClients(t, keys.ConnectionString, old.ip)
	cutOff.create(t)
	const acked, during = 10, 5
	cutOff.write(t, "before", acked)

	old.cutFrom(rest...)
	start := time.Now()
	// The test process still reaches the cut-off host: this write meets
	// a primary that may still hold its lease, whose replicas cannot
	// answer.
	early := make(chan error, 1)
	go func() { early <- tryUpload(cutOff, "cut-early", 8*time.Second) }()

	// A client of a majority server from the moment of the cut: its
	// first requests are passed on to the cut-off primary and held there
	// until another is named, then turned away (503), and the SDKs try
	// again. The reconciler promotes the first in-sync server by name, so
	// the last one normally stays a replica and forwards throughout.
	other := rest[len(rest)-1]
	majority := newStorageClients(t, keys.ConnectionString, other.ip)
	majority.check(t, "before", acked)
	t.Logf("every acknowledged write read through %s %s after the cut", other.name, time.Since(start).Round(time.Millisecond))
	var after placement.Status
	c.waitFor("a majority server's storage promoted under a newer epoch", 10*time.Second, func() bool {
		var err error
		after, err = c.readStoragePlacement(c.servers[other.name].addr, "")
		return err == nil && after.Config.Primary != "" && after.Config.Primary != old.name && after.Config.Epoch > before.Config.Epoch
	})
	t.Logf("storage primary %s (epoch %d)", after.Config.Primary, after.Config.Epoch)
	// Another primary has served: the cut-off one must not take this.
	late := make(chan error, 1)
	go func() { late <- tryUpload(cutOff, "cut-late", 5*time.Second) }()
	majority.write(t, "during", during)
	if err := <-early; err == nil {
		t.Error("the cut-off primary acknowledged a write sent right after the cut")
	} else {
		t.Logf("a write to the cut-off primary right after the cut: %.200v", err)
	}
	if err := <-late; err == nil {
		t.Error("the cut-off primary acknowledged a write while another primary served: split brain")
	} else {
		t.Logf("a write to the cut-off primary once another served: %.200v", err)
	}

	old.heal()
	healed := time.Now()
	var again placement.Status
	c.waitFor("the old primary back in the in-sync set", 60*time.Second, func() bool {
		var err error
		again, err = c.readStoragePlacement(c.servers[other.name].addr, "")
		return err == nil && len(again.Config.InSync) == 3 && slices.Contains(again.Config.InSync, old.name)
	})
	t.Logf("%s in sync again %s after the heal; storage primary %s (epoch %d)", old.name,
		time.Since(healed).Round(time.Millisecond), again.Config.Primary, again.Config.Epoch)
	// Through the old primary's endpoints, now those of a replica.
	cutOff.check(t, "during", during)
	cutOff.check(t, "before", acked)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"cut-early", "cut-late"} {
		_, err := cutOff.blobs.ServiceClient().NewContainerClient(testContainer).NewBlobClient(name).GetProperties(ctx, nil)
		if !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Errorf("blob %s, never acknowledged, after the heal: %v; want BlobNotFound", name, err)
		}
	}
}

// tryUpload uploads a small blob named name through sc, giving up after
// timeout; nil means it was acknowledged.
func tryUpload(sc storageClients, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := sc.blobs.UploadBuffer(ctx, testContainer, name, []byte("written while cut off"), nil)
	return err
}
