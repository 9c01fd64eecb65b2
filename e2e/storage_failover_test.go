package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/storage/placement"
)

// storagePlacement is the storage placement as the cluster reports it:
// a consistent read through the first server, or else a server's own
// copy; zero when no server answers.
func (c *cluster) storagePlacement() placement.Status {
	st, err := c.readStoragePlacement(strings.Split(c.apiArg, ",")[0], "")
	for _, s := range c.servers {
		if err == nil {
			break
		}
		st, err = c.readStoragePlacement(s.addr, "?stale")
	}
	return st
}

// readStoragePlacement reads the storage placement through the server at
// addr, within a few seconds: a server cut off from the leader cannot
// pass a consistent read on.
func (c *cluster) readStoragePlacement(addr, query string) (placement.Status, error) {
	var st placement.Status
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.httpGet(ctx, addr, "/v1/storage/config"+query)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", resp.Request.URL, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// storageClients are the Azure SDK clients of one storage account, through
// one server's storage endpoints.
type storageClients struct {
	blobs  *azblob.Client
	queues *azqueue.ServiceClient
	tables *aztables.ServiceClient
}

// newStorageClients makes the clients of the account whose connection
// string is cs, through the storage of the server whose storage listens
// on host: any server's storage serves every account.
func newStorageClients(t testing.TB, cs, host string) storageClients {
	t.Helper()
	cs = connectionStringAt(t, cs, host)
	var sc storageClients
	var err error
	if sc.blobs, err = azblob.NewClientFromConnectionString(cs, nil); err != nil {
		t.Fatal(err)
	}
	if sc.queues, err = azqueue.NewServiceClientFromConnectionString(cs, nil); err != nil {
		t.Fatal(err)
	}
	if sc.tables, err = aztables.NewServiceClientFromConnectionString(cs, nil); err != nil {
		t.Fatal(err)
	}
	return sc
}

// connectionStringAt is cs with the host of each endpoint replaced by
// host (the ports stay).
func connectionStringAt(t testing.TB, cs, host string) string {
	t.Helper()
	parts := strings.Split(cs, ";")
	for i, p := range parts {
		key, value, ok := strings.Cut(p, "=")
		if !ok || !strings.HasSuffix(key, "Endpoint") {
			continue
		}
		u, err := url.Parse(value)
		if err != nil {
			t.Fatalf("connection string: %s: %v", key, err)
		}
		u.Host = net.JoinHostPort(host, u.Port())
		parts[i] = key + "=" + u.String()
	}
	return strings.Join(parts, ";")
}

// The container, queue and table that write and check use.
const (
	testContainer = "data"
	testQueue     = "work"
	testTable     = "things"
)

// create makes the container, queue and table.
func (sc storageClients) create(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if _, err := sc.blobs.CreateContainer(ctx, testContainer, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.queues.CreateQueue(ctx, testQueue, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.tables.CreateTable(ctx, testTable, nil); err != nil {
		t.Fatal(err)
	}
}

// blobBody is the content of the i-th blob write writes, of some size.
func blobBody(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 1+i*500) }

// write writes n blobs, messages and entities named prefix0, prefix1 ...;
// once it returns, every one of them was acknowledged. It gives up after
// a minute (the SDKs retry 503s and time-outs meanwhile).
func (sc storageClients) write(t testing.TB, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := sc.tables.NewClient(testTable)
	for i := range n {
		name := fmt.Sprint(prefix, i)
		if _, err := sc.blobs.UploadBuffer(ctx, testContainer, name, blobBody(i), nil); err != nil {
			t.Fatalf("blob %s: %v", name, err)
		}
		if _, err := sc.queues.NewQueueClient(testQueue).EnqueueMessage(ctx, name, nil); err != nil {
			t.Fatalf("message %s: %v", name, err)
		}
		e := fmt.Sprintf(`{"PartitionKey":"p","RowKey":"%s","N":%d}`, name, i)
		if _, err := table.AddEntity(ctx, []byte(e), nil); err != nil {
			t.Fatalf("entity %s: %v", name, err)
		}
	}
}

// check reads back what write wrote with the same prefix and n: each
// message once; the queue may hold others too (up to 32 in all are
// looked at). It gives up after a minute.
func (sc storageClients) check(t testing.TB, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := sc.tables.NewClient(testTable)
	for i := range n {
		name := fmt.Sprint(prefix, i)
		resp, err := sc.blobs.DownloadStream(ctx, testContainer, name, nil)
		if err != nil {
			t.Fatalf("blob %s: %v", name, err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got.Bytes(), blobBody(i)) {
			t.Fatalf("blob %s: %d bytes (%v), want %d", name, got.Len(), err, len(blobBody(i)))
		}
		if _, err := table.GetEntity(ctx, "p", name, nil); err != nil {
			t.Fatalf("entity %s: %v", name, err)
		}
	}
	peek, err := sc.queues.NewQueueClient(testQueue).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to32(32)})
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	have := map[string]int{}
	for _, m := range peek.Messages {
		if m.MessageText != nil {
			have[*m.MessageText]++
		}
	}
	for i := range n {
		if name := fmt.Sprint(prefix, i); have[name] != 1 {
			t.Fatalf("message %s is %d times among the %d in the queue; want once", name, have[name], len(peek.Messages))
		}
	}
}

// storageAccount makes the storage account name and returns its keys.
func (c *cluster) storageAccount(name string) api.StorageAccountKeys {
	c.t.Helper()
	ctx := context.Background()
	if _, err := c.client.CreateStorageAccount(ctx, name); err != nil {
		c.t.Fatal(err)
	}
	keys, err := c.client.StorageAccountKeys(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return keys
}

// storageInSync waits until every server's storage is in the in-sync set
// and returns the placement then.
func (c *cluster) storageInSync(timeout time.Duration) placement.Status {
	c.t.Helper()
	var pl placement.Status
	c.waitFor("every server's storage in sync", timeout, func() bool {
		pl = c.storagePlacement()
		return len(pl.Config.InSync) == len(c.servers)
	})
	return pl
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
	parallel(t)
	c := newServersWith(t, 3, storageFlags(t))
	keys := c.storageAccount("app")
	pl := c.storageInSync(60 * time.Second)
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
	t.Logf("primary %s, writing through %s", primary, other)
	sc := newStorageClients(t, keys.ConnectionString, lbHost(other))
	sc.create(t)
	const n = 20
	sc.write(t, "", n)

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
	sc.check(t, "", n)
	sc.write(t, "after", 1)

	// The lost server returns with the data it had: the new primary
	// copies it the blocks it lacks, and it rejoins the in-sync set.
	c.startReplica(primary, c.servers[primary].addr, strings.Split(c.apiArg, ","))
	c.storageInSync(60 * time.Second)

	// A replica's server is lost for good and removed: its storage leaves
	// the in-sync set and the members, and writes go on.
	gone := primary
	c.kill9(c.servers[gone])
	c.mustWeft("operator", "remove-peer", gone)
	pl = c.storagePlacement()
	if slices.Contains(pl.Config.InSync, gone) || slices.ContainsFunc(pl.Members, func(m placement.Member) bool { return m.Name == gone }) {
		t.Errorf("storage placement after removing %s: %+v", gone, pl)
	}
	sc.write(t, "after-removal", 1)
}

func to32(v int32) *int32 { return &v }
