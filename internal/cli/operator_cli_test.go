package cli

import (
	"context"
	"strings"
	"testing"
)

// runningController is realController with its reconcile loop running
// until the test ends.
func runningController(t *testing.T) (addr, operator string) {
	t.Helper()
	addr, operator, ctl := realController(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr, operator
}

// withToken returns as, which runs the CLI against addr with token and
// returns its output, errors and exit code, and must, which fails the test
// unless it exits 0 and returns its output.
func withToken(t *testing.T, addr, token string) (as func(args ...string) (string, string, int), must func(args ...string) string) {
	as = func(args ...string) (string, string, int) {
		t.Helper()
		return weft(t, addr, append([]string{"--token", token}, args...)...)
	}
	must = func(args ...string) string {
		t.Helper()
		out, errOut, code := as(args...)
		if code != 0 {
			t.Fatalf("weft %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	return as, must
}
