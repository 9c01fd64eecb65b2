package conformance

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/weftcloud/weft/internal/storage"
)

// reportEnv names a file TestMain also writes the coverage table to: go
// test shows a passing package's output only with -v, so `make test` sets
// it and prints the file.
const reportEnv = "WEFT_CONFORMANCE_REPORT"

func TestMain(m *testing.M) {
	code := m.Run()
	report := coverageTable()
	fmt.Print(report)
	if path := os.Getenv(reportEnv); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: write %s: %v\n", path, err)
			code = 1
		}
	}
	os.Exit(code)
}

// coverage records, per service, the operations whose test passed, and
// those whose test failed.
var coverage = struct {
	sync.Mutex
	passed, failed map[storage.Service]map[string]bool
}{passed: map[storage.Service]map[string]bool{}, failed: map[storage.Service]map[string]bool{}}

// cover marks op of svc as covered by t: counted when t passes. An
// operation not in Reference fails the test, so a typo cannot inflate the
// table.
func cover(t *testing.T, svc storage.Service, op string) {
	t.Helper()
	if !slices.Contains(Reference[svc], op) {
		t.Fatalf("conformance: %q is not an operation of the %s reference", op, svc)
	}
	t.Cleanup(func() {
		coverage.Lock()
		defer coverage.Unlock()
		set := coverage.passed
		if t.Failed() {
			set = coverage.failed
		}
		if set[svc] == nil {
			set[svc] = map[string]bool{}
		}
		set[svc][op] = true
	})
}

func coverageTable() string {
	coverage.Lock()
	defer coverage.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "Azure Storage REST API conformance: operations covered / operations in the reference\n")
	total, covered := 0, 0
	for _, svc := range []storage.Service{storage.Blob, storage.Queue, storage.Table} {
		ops := Reference[svc]
		n := 0
		var failed []string
		for _, op := range ops {
			switch {
			case coverage.failed[svc][op]:
				failed = append(failed, op)
			case coverage.passed[svc][op]:
				n++
			}
		}
		fmt.Fprintf(&b, "  %-6s %3d / %3d", svc, n, len(ops))
		if len(failed) > 0 {
			fmt.Fprintf(&b, "   failing: %v", failed)
		}
		b.WriteByte('\n')
		total += len(ops)
		covered += n
	}
	fmt.Fprintf(&b, "  %-6s %3d / %3d\n", "all", covered, total)
	return b.String()
}

// devKey is the development account's key, for signing raw requests.
var devKey, _ = base64.StdEncoding.DecodeString(storage.DevKey)

// response is a raw answer, its body read.
// preflightRequest sends a CORS preflight (OPTIONS) for url from origin,
// asking for method and headers ("" leaves a header out).
func preflightRequest(t *testing.T, url, origin, method, headers string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if method != "" {
		req.Header.Set("Access-Control-Request-Method", method)
	}
	req.Header.Set("Access-Control-Request-Headers", headers)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return response{status: resp.StatusCode, header: resp.Header}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request signed with Shared Key for svc's development
// account to endpoint+path (path starts after the account, e.g. "/Tables")
// and reads the answer.
func do(t testing.TB, svc storage.Service, endpoint, method, path string, hdr http.Header, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	storage.SignSharedKey(req, svc, storage.DevAccount, devKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails t unless r has status and, for an error, x-ms-error-code
// code.
func (r response) want(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status || r.header.Get("x-ms-error-code") != code {
		t.Fatalf("answer %d %q, want %d %q; body: %.300s", r.status, r.header.Get("x-ms-error-code"), status, code, r.body)
	}
}

// wantErr fails t unless err is an Azure error answer with status and code.
func wantErr(t testing.TB, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error %d %s, want %d %s (%v)", re.StatusCode, re.ErrorCode, status, code, err)
	}
}
