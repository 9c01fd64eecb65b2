package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftcloud/weft/api"
)

// TestPortalTenantsInABrowser drives the portal as two tenants' people, in
// headless Chromium, each in a browser of their own (no shared cookies).
// acme's owner signs in with a one-time link the operator made; the same
// link opened again is refused. globex signs in with a link of its own.
// Where VMs boot, acme creates a VM through the VMs page's form, sees it
// running and then stopped as the page updates itself; globex's VMs page
// does not list it and its page answers not found. One VM boot in all:
// under QEMU's emulation a boot costs seconds of CPU.
func TestPortalTenantsInABrowser(t *testing.T) {
	parallel(t)
	requireE2E(t)
	requireChromium(t)
	c := newCluster(t, 1, storageFlags(t)...)
	ctx := context.Background()
	for _, name := range []string{"acme", "globex"} {
		if _, err := c.client.CreateTenant(ctx, api.CreateTenant{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	link := func(tenant string) api.SignInLink {
		t.Helper()
		l, err := c.client.CreateSignInLink(ctx, api.CreateSignInLink{Tenant: tenant, Role: api.AccessOwner})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.URL, c.api+"/signin/") {
			t.Fatalf("the sign-in link %q is not on the portal %s", l.URL, c.api)
		}
		return l
	}
	signedInAs := func(tenant string) chromedp.Action[chromedp.Void] {
		return waitTrue("dashboard of "+tenant, fmt.Sprintf(
			`document.querySelector("h1").textContent === "Dashboard" && document.querySelector(".who").textContent.endsWith(" · %s")`, tenant))
	}

	acme := newPortalBrowser(t, c.api)
	acmeLink := link("acme")
	acme.run("open acme's sign-in link",
		chromedp.Navigate(acmeLink.URL),
		chromedp.WaitVisible(chromedp.CSS("#signin-link")),
	)
	acme.shot("signin-link")
	acme.run("sign in with the link",
		chromedp.Click(chromedp.CSS("#signin-link")),
		signedInAs("acme"),
	)

	// The link worked once: opened again, in another browser, it signs
	// nobody in.
	globex := acme.another()
	globex.run("open acme's link again",
		chromedp.Navigate(acmeLink.URL),
		chromedp.Click(chromedp.CSS("#signin-link")),
		waitText(`[role="alert"]`, "Sign-in failed: this link is not valid (it works once, and expires)."),
	)
	globex.shot("signin-link-used")
	globex.run("open the VMs page signed out", chromedp.Navigate(c.api+"/vms"))
	if loc := answer(globex, "where the browser is", chromedp.Location()); loc != c.api+"/signin" {
		t.Errorf("after the refused link, /vms goes to %s; want the sign-in page", loc)
	}
	globex.run("sign in as globex",
		chromedp.Navigate(link("globex").URL),
		chromedp.Click(chromedp.CSS("#signin-link")),
		signedInAs("globex"),
	)

	requireQEMU(t)
	vmSlots.take(t) // from here on it boots a VM
	// The default tenant's images serve every tenant: the operator's.
	c.mustWeft("image", "build", "tiny")
	acme.run("open the VMs page",
		chromedp.Navigate(c.api+"/vms"),
		chromedp.WaitReady(chromedp.CSS(`#vm-image option[value="tiny"]`)),
	)
	acme.runWithin(3*time.Minute, "create a VM",
		chromedp.SendKeys(chromedp.CSS("#vm-name"), "box"),
		chromedp.SetValue(chromedp.CSS("#vm-image"), "tiny"),
		chromedp.SetValue(chromedp.CSS("#vm-cpus"), "1"),
		chromedp.SetValue(chromedp.CSS("#vm-memory"), "256Mi"),
		chromedp.Submit(chromedp.CSS("#vm-name")),
		waitText("h1", "VM box"),
		markPage(),
		liveText("#vm-state", api.StateRunning),
	)
	acme.shot("vm")
	if vm, err := c.client.WithTenant("acme").VM(ctx, "box"); err != nil || vm.State != api.StateRunning || vm.Memory != 256<<20 {
		t.Errorf("acme's VM through the API: %+v, %v; want running with 256Mi", vm, err)
	}
	acme.runWithin(2*time.Minute, "stop the VM",
		markPage(),
		chromedp.Click(chromedp.CSS("#vm-stop")),
		// The stop's answer is the VM's page again, stopping.
		waitTrue("the VM's page again", `window.weftMarked !== true && `+textIs("h1", "VM box")),
		markPage(),
		liveText("#vm-state", api.StateStopped),
	)
	acme.run("open acme's VMs",
		chromedp.Navigate(c.api+"/vms"),
		waitText(`[data-vm-state="box"]`, api.StateStopped),
	)
	acme.shot("tenant-vms")
	acme.run("open acme's dashboard", chromedp.Navigate(c.api+"/"), signedInAs("acme"))
	acme.shot("tenant-dashboard")
	acme.fitsWidth("acme's dashboard")
	acme.run("a phone's screen", chromedp.EmulateViewport(390, 844))
	acme.fitsWidth("acme's dashboard on a phone")
	acme.shot("tenant-dashboard-phone")
	acme.run("a laptop's screen", chromedp.EmulateReset())

	// globex sees no VM of acme's: not in its list, and not by its name.
	globex.run("open globex's VMs",
		chromedp.Navigate(c.api+"/vms"),
		waitTrue("empty list", `document.querySelector("#vm-list tbody").textContent.trim() === "No VMs."`),
	)
	resp := answer(globex, "open acme's VM as globex", chromedp.NavigateResponse(c.api+"/vms/box"))
	if resp.Status != http.StatusNotFound {
		t.Errorf("globex opening acme's VM: status %d, want 404", resp.Status)
	}
	globex.run("see the not-found page",
		waitText("h1", "Error"),
		waitTrue("message naming the VM", `document.querySelector('[role="alert"]').textContent.includes("box")`),
	)
	globex.shot("vm-not-found")
}

// answer runs an action that answers a value, within a minute, and fails
// the test on an error.
func answer[T any](b *portalBrowser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// fitsWidth checks that the page is no wider than the window: only the
// parts meant to scroll sideways (wide tables) do.
func (b *portalBrowser) fitsWidth(what string) {
	b.t.Helper()
	wide := answer(b, what, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if wide > 0 {
		b.t.Errorf("%s is %dpx wider than the window", what, wide)
	}
}
