# Weft: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
FUZZTIME ?= 30s
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/weftcloud/weft/internal/buildinfo.Version=$(VERSION)

.PHONY: build run test test-short bench fuzz vet fmt clean deps

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/weft ./cmd/weft

# Starts the whole cloud on this machine, deploys examples/hello and prints a tour.
run: build
	./scripts/run.sh

# Every test: unit, conformance and end-to-end (real processes on loopback).
# The end-to-end suite, the longest package, runs beside the others from the
# start, vet included (a vet failure fails the run once the tests are done),
# without -race: its test binary drives weft processes built without it. Most other packages wait on timers, elections and VM boots more than
# they compute, so three of them run at a time (go test's default is one per
# core). go test shows a passing package's output only with -v, so the
# storage conformance suite also writes its coverage table to a file; that
# and the end-to-end suite's output are printed after the others'. Test
# binaries are linked without DWARF (-w: a third less linking, and stack
# traces and race reports do not use it). The timeout, per test binary, is
# twice the longest one's time on a loaded machine (BENCHMARKS.md, "The test
# run").
TEST_TIMEOUT ?= 30m
TESTFLAGS    := -count=1 -timeout $(TEST_TIMEOUT) -ldflags=-w
test: build
	@report=$$(mktemp); e2elog=$$(mktemp); status=0; \
	$(GO) test $(TESTFLAGS) ./e2e/ >$$e2elog 2>&1 & e2e=$$!; \
	echo "$(GO) vet ./..."; $(GO) vet ./... || status=1; \
	WEFT_CONFORMANCE_REPORT=$$report $(GO) test -race -p 3 $(TESTFLAGS) \
		$$($(GO) list ./... | grep -v '/e2e$$') || status=1; \
	wait $$e2e || status=1; \
	cat $$e2elog $$report; rm -f $$report $$e2elog; exit $$status

# Unit tests only (skips the end-to-end suite).
test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks and harnesses; results go in BENCHMARKS.md.
bench: build
	./scripts/bench.sh

# Every fuzz target, FUZZTIME (default 30s) each; new failing inputs land in testdata/fuzz.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# The Debian packages the runtimes and the tests need (apt-get; only what is missing).
deps:
	GO=$(GO) ./scripts/deps.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .weft
