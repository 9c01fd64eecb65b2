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

# Every test: unit, conformance and end-to-end (real processes on loopback),
# and go vet; scripts/test.sh says in what order and why. TEST_TIMEOUT is per
# test binary; TESTFLAGS adds go test flags (such as -v).
TEST_TIMEOUT ?= 30m
test:
	GO=$(GO) MAKE=$(MAKE) TEST_TIMEOUT=$(TEST_TIMEOUT) TESTFLAGS='$(TESTFLAGS)' ./scripts/test.sh

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
