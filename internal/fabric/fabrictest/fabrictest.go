// Package fabrictest starts a real fabric controller on a real state
// store and package store in a test's temporary folder, for the tests of
// the packages built on the controller (its API, the client, drives).
package fabrictest

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
)

// Controller is a controller with its own state and packages.
type Controller struct {
	*fabric.Controller
	State       *state.DB
	PackagesDir string
}

// New makes a controller of cfg (no nodes' transport). With run, its
// reconcile loop runs until the test ends, every 20 ms unless cfg.Tick
// says otherwise.
func New(t testing.TB, cfg fabric.Config, run bool) *Controller {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pkgDir := filepath.Join(dir, "packages")
	pkgs, err := pkgstore.Open(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	if run && cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	c := &Controller{Controller: fabric.New(cfg, st, pkgs, nil), State: st, PackagesDir: pkgDir}
	if run {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	return c
}

// EmptyPackage stores a package with no files and returns its digest.
func (c *Controller) EmptyPackage(t testing.TB) string {
	t.Helper()
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := c.PutPackage(context.Background(), &empty)
	if err != nil {
		t.Fatal(err)
	}
	return pkg.Digest
}
