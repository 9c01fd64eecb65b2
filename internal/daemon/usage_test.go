package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// TestUsageCountsNameTenants runs a real balancer and storage: requests to
// a tenant's service and storage account come out as that tenant's
// counts; the system account's requests are nobody's.
func TestUsageCountsNameTenants(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	accts := accounts.New(st, func() accounts.Endpoints { return accounts.Endpoints{} }, true)
	if _, err := accts.Create(ctx, "acme", "acmefiles"); err != nil {
		t.Fatal(err)
	}
	stor, err := storageserver.Start(storageserver.Config{Data: t.TempDir(), Accounts: accts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stor.Close() })
	keys, err := accts.AccountKeys(ctx, "acme", "acmefiles")
	if err != nil {
		t.Fatal(err)
	}
	cs := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=acmefiles;AccountKey=%s;BlobEndpoint=%s/acmefiles;", keys.Key1, stor.URL("blob"))
	blobs, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two", "three"} {
		if _, err := blobs.CreateContainer(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := accts.System(ctx); err != nil {
		t.Fatal(err)
	}

	bal := lb.New("127.0.0.1", nil)
	t.Cleanup(func() { bal.Close() })
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })}
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bln)
	t.Cleanup(func() { backend.Close() })
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pln.Addr().(*net.TCPAddr).Port
	pln.Close()
	if err := bal.Update([]lb.Endpoint{{Key: "acme/shop/web/http", Port: port, Backends: []lb.Backend{{ID: "shop-web-0", Addr: bln.Addr().String()}}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	got := map[string]float64{}
	counts, gauges := usageCounts(bal, stor, accts)()
	for _, c := range append(counts, gauges...) {
		got[c.Tenant+" "+c.Service+" "+c.Meter] += c.Value
	}
	// A GET and its answer: a hundred or so bytes each way.
	if b := got["acme shop "+api.MeterLBGiB] * (1 << 30); b < 100 || b > 1000 {
		t.Errorf("lb bytes of shop = %v, want a GET and its answer", b)
	}
	delete(got, "acme shop "+api.MeterLBGiB)
	want := map[string]float64{"acme acmefiles " + api.MeterStorageTransactions: 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}
