package portal_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/pkgarchive"
)

// BenchmarkTenancyAtScale fills one server with WEFT_BENCH_TENANTS tenants
// (default 1,000), each with WEFT_BENCH_ACCOUNTS storage accounts (default
// 100: 100,000 objects) and one service, then times list and create calls
// as a tenant's token, through the API and the portal, beside the same
// lists as the operator over every tenant's objects (what the API answered
// before tenancy: one identity that sees everything; the client walks it
// in pages of 1,000), and one page of 1,000 of them. It reports the p99 of
// each call, the bytes of the portal's first page with its stylesheet
// and script, and, where Chromium is installed, the time from navigation
// to the dashboard's first paint in a headless browser.
func BenchmarkTenancyAtScale(b *testing.B) {
	tenants, accounts := envInt("WEFT_BENCH_TENANTS", 1000), envInt("WEFT_BENCH_ACCOUNTS", 100)
	if b.N == 1 {
		// The testing package's first, unreported run that sizes b.N: a
		// small fill, so the large one is made once.
		tenants, accounts = 2, 2
	}
	ctx := context.Background()
	s := startServer(b)
	operator := client.New(s.url).WithToken(s.token)
	pkg := benchPackage(b, operator)

	start := time.Now()
	tokens := make([]string, tenants)
	parallel(b, tenants, func(i int) error {
		name := fmt.Sprintf("t%04d", i)
		if _, err := operator.CreateTenant(ctx, api.CreateTenant{Name: name}); err != nil {
			return err
		}
		tok, err := operator.CreateToken(ctx, api.CreateToken{Tenant: name, Role: api.AccessOwner})
		if err != nil {
			return err
		}
		tokens[i] = tok.Token
		as := client.New(s.url).WithToken(tok.Token)
		if _, err := as.Deploy(ctx, benchService("web", pkg)); err != nil {
			return err
		}
		for j := range accounts {
			if _, err := as.CreateStorageAccount(ctx, fmt.Sprintf("%sa%04d", name, j)); err != nil {
				return err
			}
		}
		return nil
	})
	b.Logf("filled %d tenants, %d objects in %s", tenants, tenants*(accounts+1), time.Since(start).Round(time.Second))

	// Signed-in portal sessions of a few tenants.
	browsers := make([]*browser, min(tenants, 20))
	for i := range browsers {
		browsers[i] = newBrowser(b, s.url)
		browsers[i].signIn(tokens[i])
	}
	pageBytes := firstPageBytes(b, browsers[0])

	timings := map[string][]time.Duration{}
	timed := func(name string, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		timings[name] = append(timings[name], time.Since(t0))
	}
	all := client.New(s.url).WithToken(s.token).WithTenant(api.AllTenants)
	b.ResetTimer()
	for n := range b.N {
		i := rand.IntN(tenants)
		as := client.New(s.url).WithToken(tokens[i])
		timed("tenant-list-accounts", func() error { _, err := as.StorageAccounts(ctx); return err })
		timed("tenant-list-services", func() error { _, err := as.Services(ctx); return err })
		timed("tenant-create-account", func() error {
			_, err := as.CreateStorageAccount(ctx, fmt.Sprintf("t%04db%06d", i, n))
			return err
		})
		timed("tenant-deploy-service", func() error {
			_, err := as.Deploy(ctx, benchService(fmt.Sprintf("s%d", n), pkg))
			return err
		})
		br := browsers[n%len(browsers)]
		timed("portal-dashboard", func() error { br.get("/"); return nil })
		timed("portal-storage", func() error { br.get("/storage"); return nil })
		if n%10 == 0 {
			timed("operator-list-all-accounts", func() error { _, err := all.StorageAccounts(ctx); return err })
			timed("operator-page-of-1000-accounts", func() error {
				var page []api.StorageAccount
				_, err := all.Do(ctx, "GET", "/v1/storage/accounts", url.Values{"limit": {"1000"}, "after": {fmt.Sprintf("t%04da0000", i)}}, nil, &page)
				return err
			})
			timed("operator-list-all-services", func() error { _, err := all.Services(ctx); return err })
		}
	}
	b.StopTimer()
	if renders := firstRenders(b, s.url, tokens[0], 20); renders != nil {
		timings["portal-first-render"] = renders
		sorted := slices.Sorted(slices.Values(renders))
		b.ReportMetric(float64(sorted[len(sorted)/2].Microseconds())/1000, "portal-first-render-p50-ms")
	}
	for name, ds := range timings {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
	b.ReportMetric(float64(pageBytes)/1024, "first-page-KiB")
}

func benchService(name, pkg string) api.ServiceSpec {
	return api.ServiceSpec{Name: name, Roles: []api.RoleSpec{{Name: "work", Kind: api.KindWorker,
		Runtime: api.RuntimeProcess, Package: pkg, Command: []string{"./run"}, Instances: 0}}}
}

func benchPackage(b *testing.B, c *client.Client) string {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(dir, &buf); err != nil {
		b.Fatal(err)
	}
	p, err := c.UploadPackage(context.Background(), &buf)
	if err != nil {
		b.Fatal(err)
	}
	return p.Digest
}

var assetRE = regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`)

// firstPageBytes is the dashboard's HTML and the assets it links.
func firstPageBytes(b *testing.B, br *browser) int {
	_, body := br.get("/")
	n := len(body)
	for _, m := range assetRE.FindAllStringSubmatch(body, -1) {
		_, asset := br.get(m[1])
		n += len(asset)
	}
	return n
}

// parallel runs f for 0..n-1 on 32 workers and fails on the first error.
func parallel(b *testing.B, n int, f func(int) error) {
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// firstRenders signs in to the portal with token in headless Chromium and
// loads the dashboard n times, each time reading when the browser first
// painted its content (the Paint Timing API's first-contentful-paint,
// from the start of the navigation). Nil where Chromium is not installed.
func firstRenders(b *testing.B, base, token string, n int) []time.Duration {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
		}
	}
	if exe == "" {
		b.Log("chromium is not installed (make deps installs it): no time to first render")
		return nil
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.UserDataDir(b.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelRun()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/signin"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
	); err != nil {
		b.Fatalf("sign in to the portal in chromium: %v", err)
	}
	const fcp = `(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime`
	var out []time.Duration
	for range n {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
			b.Fatalf("load the dashboard: %v", err)
		}
		for {
			ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fcp))
			if err != nil {
				b.Fatalf("read the first paint: %v", err)
			}
			if ms >= 0 {
				out = append(out, time.Duration(ms*float64(time.Millisecond)))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}
