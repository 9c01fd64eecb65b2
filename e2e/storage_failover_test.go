package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/storage/placement"
)

// storagePlacement is the storage placement as the cluster reports it.
func (c *cluster) storagePlacement() placement.Status {
	var st placement.Status
	resp, err := http.Get("http://" + strings.Split(c.apiArg, ",")[0] + "/v1/storage/config")
	for _, s := range c.servers {
		if err == nil {
			break
		}
		resp, err = http.Get("http://" + s.addr + "/v1/storage/config?stale")
	}
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// storageRoles is each storage member's role as `weft operator storage`
// shows it.
func (c *cluster) storageRoles() map[string]string {
	c.t.Helper()
	out := c.mustWeft("operator", "storage")
	roles := map[string]string{}
	_, table, _ := strings.Cut(out, "\nNAME ")
	for _, line := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 2 {
			roles[f[0]] = f[1]
		}
	}
	return roles
}

// TestStorageSurvivesPrimaryLoss writes blobs, messages and entities
// through one server's storage endpoint of a three-server cluster, with
// the other two servers' storage replicas of the first's, kills the
// storage primary with SIGKILL, and reads every acknowledged write back
// through a surviving server once another took over; then writes more,
// and restarts the lost server, which rejoins the in-sync set; then loses
// it again for good and removes it from the cluster.
func TestStorageSurvivesPrimaryLoss(t *testing.T) {
	c := newServersWith(t, 3, storageFlags(t), "http://", client.New)
	ctx := context.Background()
	if _, err := c.client.CreateStorageAccount(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	keys, err := c.client.StorageAccountKeys(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	var pl placement.Status
	c.waitFor("every server's storage in sync", 60*time.Second, func() bool {
		pl = c.storagePlacement()
		return len(pl.Config.InSync) == 3
	})
	primary := pl.Config.Primary
	want := map[string]string{}
	for name := range c.servers {
		want[name] = "in-sync"
	}
	want[primary] = "primary"
	if got := c.storageRoles(); !maps.Equal(got, want) {
		t.Errorf("weft operator storage: roles %v, want %v", got, want)
	}
	var other string
	for name := range c.servers {
		if name != primary {
			other = name
			break
		}
	}
	// The account's endpoints name the server it was made on; any
	// server's storage serves it.
	cs := keys.ConnectionString
	for name := range c.servers {
		cs = strings.ReplaceAll(cs, lbHost(name)+":", lbHost(other)+":")
	}
	t.Logf("primary %s, writing through %s", primary, other)
	blobs, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	queues, err := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := aztables.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := queues.CreateQueue(ctx, "work", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tables.CreateTable(ctx, "things", nil); err != nil {
		t.Fatal(err)
	}
	table := tables.NewClient("things")
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 1+i*500) }
	const n = 20
	for i := range n {
		if _, err := blobs.UploadBuffer(ctx, "data", fmt.Sprint(i), body(i), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := queues.NewQueueClient("work").EnqueueMessage(ctx, fmt.Sprint("m", i), nil); err != nil {
			t.Fatal(err)
		}
		e := fmt.Sprintf(`{"PartitionKey":"p","RowKey":"%d","N":%d}`, i, i)
		if _, err := table.AddEntity(ctx, []byte(e), nil); err != nil {
			t.Fatal(err)
		}
	}

	c.kill9(c.servers[primary])
	c.waitFor("another server's storage taking over", 60*time.Second, func() bool {
		p := c.storagePlacement().Config.Primary
		return p != "" && p != primary
	})
	// The old primary is out of the new epoch's in-sync set while it is down.
	if roles := c.storageRoles(); roles[primary] != "out-of-sync" || roles[c.storagePlacement().Config.Primary] != "primary" {
		t.Errorf("weft operator storage after the primary's loss: roles %v", roles)
	}
	// The SDKs retry the 503s of the moments until this server forwards
	// to the new primary.
	for i := range n {
		resp, err := blobs.DownloadStream(ctx, "data", fmt.Sprint(i), nil)
		if err != nil {
			t.Fatalf("blob %d after the primary's loss: %v", i, err)
		}
		var got bytes.Buffer
		got.ReadFrom(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got.Bytes(), body(i)) {
			t.Fatalf("blob %d: %d bytes, want %d", i, got.Len(), len(body(i)))
		}
		if _, err := table.GetEntity(ctx, "p", fmt.Sprint(i), nil); err != nil {
			t.Fatalf("entity %d: %v", i, err)
		}
	}
	peek, err := queues.NewQueueClient("work").PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to32(32)})
	if err != nil || len(peek.Messages) != n {
		t.Fatalf("messages after the primary's loss: %d, %v; want %d", len(peek.Messages), err, n)
	}
	if _, err := blobs.UploadBuffer(ctx, "data", "after", []byte("still here"), nil); err != nil {
		t.Fatalf("a write after the primary's loss: %v", err)
	}

	// The lost server returns with the data it had: the new primary
	// copies it the blocks it lacks, and it rejoins the in-sync set.
	c.startReplica(primary, c.servers[primary].addr, strings.Split(c.apiArg, ","))
	c.waitFor(primary+" back in the in-sync set", 60*time.Second, func() bool {
		return len(c.storagePlacement().Config.InSync) == 3
	})

	// A replica's server is lost for good and removed: its storage leaves
	// the in-sync set and the members, and writes go on.
	gone := primary
	c.kill9(c.servers[gone])
	c.mustWeft("operator", "remove-peer", gone)
	pl = c.storagePlacement()
	if slices.Contains(pl.Config.InSync, gone) || slices.ContainsFunc(pl.Members, func(m placement.Member) bool { return m.Name == gone }) {
		t.Errorf("storage placement after removing %s: %+v", gone, pl)
	}
	if _, err := blobs.UploadBuffer(ctx, "data", "after-removal", []byte("still here"), nil); err != nil {
		t.Fatalf("a write after a replica's server was removed: %v", err)
	}
}

func to32(v int32) *int32 { return &v }
