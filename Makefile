# mlsengine build targets. `make test` is the command CI runs (see .ci/run).
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
BENCHPKGS ?= ./...

.PHONY: all build test vectors fuzz bench lint

all: build test

build:
	$(GO) build ./...

# The default test run: vet, then every package's tests (the official
# vectors included). Kept under a few minutes on 2 cores.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# The conformance check over the bundled official vectors.
vectors:
	$(GO) run ./cmd/mlsadmin vectors testdata/vectors

# Runs every Fuzz target in the module for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

# Benchmarks, repeated for benchstat: make bench > new.txt; benchstat old.txt new.txt
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(BENCHCOUNT) $(BENCHPKGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
