package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/pkgarchive"
)

// screenshots is where the browser tests leave pictures of the portal's
// pages, from the repository's root.
const screenshots = "../build/screenshots"

// requireChromium returns the headless browser the portal tests drive
// (Debian's chromium, which scripts/deps.sh installs). Without it the
// tests skip, except in CI, where they fail.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the portal's browser tests need it (scripts/deps.sh installs it)")
	}
	t.Skip("chromium is not installed (make deps installs it): the portal's browser tests are skipped")
	return ""
}

// portalBrowser is a headless Chromium, driven through chromedp, whose
// downloads land in a folder of the test.
type portalBrowser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	downloads string
}

func newPortalBrowser(t *testing.T, base string) *portalBrowser {
	exe := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &portalBrowser{t: t, ctx: ctx, base: base, downloads: t.TempDir()}
	// The first call starts the browser, which lives as long as its
	// context: this one has no timeout.
	allow := true
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.downloads, EventsEnabled: &allow,
		})
		return err
	})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := os.MkdirAll(screenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// another is a second window of b's browser that shares nothing with it,
// as another person's browser: its own cookies, its own session.
func (b *portalBrowser) another() *portalBrowser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	// The first call opens the window, which lives as long as its
	// context: this one has no timeout.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open a new browser context: %v", err)
	}
	return &portalBrowser{t: b.t, ctx: ctx, base: b.base, downloads: b.downloads}
}

// run runs actions, within a minute, and fails the test on an error.
func (b *portalBrowser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.runWithin(time.Minute, what, actions...)
}

// runWithin runs actions within d, and fails the test on an error.
func (b *portalBrowser) runWithin(d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		pctx, pcancel := context.WithTimeout(b.ctx, 5*time.Second)
		page, _ := chromedp.Run(pctx, chromedp.OuterHTML(chromedp.CSS("main")))
		pcancel()
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v\npage: %s", what, err, page)
	}
}

// shot saves a screenshot of the whole page as build/screenshots/NAME.png
// (quality 100: PNG).
func (b *portalBrowser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(screenshots, name+".png"), png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// waitText waits until the element sel shows want, as the page's own
// live updates change it (no reload), or a page the browser goes to.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf("%s showing %q", sel, want), textIs(sel, want))
}

// textIs is a JavaScript expression: the element sel shows want.
func textIs(sel, want string) string {
	return fmt.Sprintf(`(document.querySelector(%q)||{}).textContent === %q`, sel, want)
}

// markPage marks the page the browser shows, for liveText: reloading it or
// going to another page loses the mark.
func markPage() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.weftMarked = true`)(ctx, t)
		return err
	})
}

// liveText waits until the element sel shows want on the page markPage
// marked: the page's live updates changed it, not a reload.
func liveText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf("%s showing %q without a reload", sel, want), `window.weftMarked === true && `+textIs(sel, want))
}

// waitTrue waits until the JavaScript expression expr is true on the
// page, as long as the run allows; what names the wait in its error.
func waitTrue(what, expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			// A page being left answers an error: ask the next one.
			ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no %s: %w (last: %v, %v)", what, ctx.Err(), ok, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// TestPortalInABrowser drives the portal as a user would, in headless
// Chromium: sign in with the admin token; deploy a service from a model
// file and scale it, watching it become healthy without reloading; make a
// storage account and a container, upload a file and download it again;
// drain a node. The main pages are saved as screenshots on the way.
// Signing in with a one-time link, a tenant's VM and what another tenant
// sees are in TestPortalTenantsInABrowser.
func TestPortalInABrowser(t *testing.T) {
	parallel(t)
	requireE2E(t)
	requireChromium(t)
	c := newCluster(t, 2, storageFlags(t)...)
	token := strings.TrimSpace(readFile(t, filepath.Join(c.dir, "server", "admin.token")))
	b := newPortalBrowser(t, c.api)

	b.run("sign in",
		chromedp.Navigate(c.api+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	)
	b.shot("signin")
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		waitText("h1", "Dashboard"),
	)
	b.shot("dashboard")
	b.run("a phone's screen", chromedp.EmulateViewport(390, 844))
	b.fitsWidth("the dashboard on a phone")
	b.shot("dashboard-phone")
	b.run("a laptop's screen", chromedp.EmulateReset())

	// The portal does not pack folders: the package is uploaded as
	// `weft deploy` would, and the model names it.
	var pkg bytes.Buffer
	model := c.service("greeter", freePort(t), 2, "portal")
	if err := pkgarchive.Pack(filepath.Join(filepath.Dir(model), "package"), &pkg); err != nil {
		t.Fatal(err)
	}
	p, err := c.client.UploadPackage(context.Background(), &pkg)
	if err != nil {
		t.Fatal(err)
	}
	model = writeFile(t, filepath.Join(c.dir, "greeter.yaml"), strings.Replace(readFile(t, model), "package: ./package", "package: "+p.Digest, 1))
	b.run("deploy a service",
		chromedp.Navigate(c.api+"/services"),
		chromedp.SetUploadFiles(chromedp.CSS("#model"), []string{model}),
		chromedp.Click(chromedp.CSS("#deploy")),
		waitText("h1", "Service greeter"),
		waitText("#healthy-web", "2"),
	)
	b.shot("service")
	b.run("scale the service",
		chromedp.SetValue(chromedp.CSS("#scale-web"), "3"),
		chromedp.Click(chromedp.CSS("#scale-web-go")),
		waitText("#healthy-web", "3"),
	)
	if n := c.healthy("greeter"); n != 3 {
		t.Errorf("the API counts %d healthy instances, want 3", n)
	}

	// Storage: an account, a container, a file up and down.
	upload := writeFile(t, filepath.Join(t.TempDir(), "notes.txt"), "uploaded through the portal\n")
	b.run("create a storage account",
		chromedp.Navigate(c.api+"/storage"),
		chromedp.SendKeys(chromedp.CSS("#acct-name"), "portalfiles"),
		chromedp.Click(chromedp.CSS("#create-account")),
		waitText("h1", "Storage account portalfiles"),
		chromedp.SendKeys(chromedp.CSS("#container-name"), "docs"),
		chromedp.Click(chromedp.CSS("#create-container")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/storage/portalfiles/c/docs"]`)),
	)
	b.shot("storage-account")
	b.run("upload a blob",
		chromedp.Navigate(c.api+"/storage/portalfiles/c/docs"),
		chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{upload}),
		chromedp.Click(chromedp.CSS("#upload")),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="download?blob=notes.txt"]`)),
	)
	b.shot("container")
	b.run("download the blob", chromedp.Click(chromedp.CSS(`a[href$="download?blob=notes.txt"]`)))
	got := filepath.Join(b.downloads, "notes.txt")
	c.waitFor("the download", 20*time.Second, func() bool {
		data, err := os.ReadFile(got)
		return err == nil && string(data) == "uploaded through the portal\n"
	})

	// The operator drains a node.
	b.run("drain a node",
		chromedp.Navigate(c.api+"/nodes"),
		chromedp.Click(chromedp.CSS("#drain-node-1")),
		waitText("#node-state-node-1", api.NodeDraining),
	)
	b.shot("nodes")
	if nd, err := c.client.Node(context.Background(), "node-1"); err != nil || nd.State != api.NodeDraining {
		t.Errorf("node-1 through the API: %+v, %v; want draining", nd.State, err)
	}
	for _, page := range []string{"vms", "usage", "audit"} {
		b.run("open "+page, chromedp.Navigate(c.api+"/"+page), chromedp.WaitVisible(chromedp.CSS("main")))
		b.shot(page)
	}
}
