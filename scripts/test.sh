#!/usr/bin/env bash
# make test: go vet and every test (unit, conformance, end-to-end), as two
# chains that run side by side from the start:
#
#   - the race-built packages: every package but e2e, with -race, four at a
#     time (go test's default is one per core; most of them wait on timers,
#     elections and VM boots more than they compute: beside two busy loops,
#     four at a time ended 43 s sooner than three, BENCHMARKS.md "Full runs,
#     session 18");
#   - the plain build: bin/weft (make build), then go vet and the end-to-end
#     suite beside each other. The suite runs without -race (its test binary
#     drives weft processes built without it) and is the longest package.
#
# Everything in the plain chain is built as make build builds bin/weft
# (CGO_ENABLED=0, -trimpath), so the packages compiled for bin/weft serve
# vet, the suite and the suite's own build of weft: on a fresh machine each
# differing setting compiled the whole module and its dependencies again (a
# few CPU-minutes each). vet comes after make build, not beside it, since two
# go commands compiling the same package at once both compile it.
#
# go test shows a passing package's output only with -v, so the storage
# conformance suite also writes its coverage table to a file; that, vet's
# and the end-to-end suite's output are printed after the race-built
# packages'. Test binaries are linked without DWARF (-w: a third less
# linking; stack traces and race reports do not use it). TEST_TIMEOUT, per
# test binary, is twice the longest one's time on a loaded machine
# (BENCHMARKS.md, "The test run").
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
MAKE=${MAKE:-make}
flags=(-count=1 -timeout "${TEST_TIMEOUT:-30m}" -ldflags=-w ${TESTFLAGS:-})
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

plain() {
	"$MAKE" --no-print-directory build GO="$GO" || return 1
	CGO_ENABLED=0 "$GO" vet -trimpath ./... >"$out/vet" 2>&1 &
	local vet=$! status=0
	CGO_ENABLED=0 "$GO" test -trimpath "${flags[@]}" ./e2e/ >"$out/e2e" 2>&1 || status=1
	wait "$vet" || { echo "go vet ./... failed" >>"$out/vet"; status=1; }
	return $status
}
plain >"$out/plain" 2>&1 &
plain_pid=$!

status=0
WEFT_CONFORMANCE_REPORT=$out/conformance "$GO" test -race -p 4 "${flags[@]}" \
	$("$GO" list ./... | grep -v '/e2e$') || status=1
wait "$plain_pid" || status=1
cat "$out/plain" "$out/vet" "$out/e2e" "$out/conformance" 2>/dev/null
exit $status
