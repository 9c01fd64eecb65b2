package storageserver

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/weftcloud/weft/internal/metrics/metricstest"
)

// TestMetrics scrapes the storage's own /metrics (as `weft storage
// --metrics-listen` serves it) after real requests through the Azure SDK:
// a container made, a blob written, a missing blob deleted.
func TestMetrics(t *testing.T) {
	s, err := Start(Config{Data: t.TempDir(), MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	blobs, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "box", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "box", "b", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.DeleteBlob(ctx, "box", "missing", nil); err == nil {
		t.Fatal("deleted a missing blob")
	}
	got := metricstest.Scrape(t, nil, s.MetricsURL(), "")
	for _, w := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"weft_storage_requests_total", []string{"service", "blob", "operation", "PUT container", "status", "201"}, 1},
		{"weft_storage_requests_total", []string{"service", "blob", "operation", "PUT", "status", "201"}, 1},
		{"weft_storage_errors_total", []string{"service", "blob", "operation", "DELETE", "code", "BlobNotFound"}, 1},
		{"weft_storage_request_duration_seconds", []string{"service", "blob"}, 3},
		{"weft_storage_bytes_total", []string{"service", "blob", "direction", "in"}, 5},
		{"weft_boltlog_group_writes", []string{"db", "blob"}, 1},
		{"weft_boltlog_fdatasync_duration_seconds", []string{"db", "blob"}, 1},
	} {
		if v, ok := got.Value(w.name, w.labels...); !ok || v < w.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", w.name, w.labels, v, ok, w.min)
		}
	}
}

// TestMetricsListenIsLoopbackOnly: the storage alone has no credentials,
// so its metrics are for this machine.
func TestMetricsListenIsLoopbackOnly(t *testing.T) {
	s, err := Start(Config{Data: t.TempDir(), MetricsListen: "0.0.0.0:0"})
	if err == nil {
		s.Close()
		t.Fatal("metrics served on every address")
	}
	if !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %q does not say why", err)
	}
}
