package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsRequestsAndFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res := Run(ctx, srv.URL, 4, time.Second)
	if res.Requests < 10 {
		t.Fatalf("only %d requests", res.Requests)
	}
	if res.Failures == 0 || res.Errors["500 Internal Server Error"] == 0 {
		t.Errorf("failures not counted: %+v", res)
	}
	if res.Failures > res.Requests/5 {
		t.Errorf("%d failures of %d requests, want about a tenth", res.Failures, res.Requests)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("latencies out of order: %s", res)
	}
}
