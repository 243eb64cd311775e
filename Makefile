# mlsengine build targets. `make test` is the command CI runs (see .ci/run).
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
BENCHPKGS ?= ./...

.PHONY: all build test vectors fuzz bench storagecost soak lint

all: build test

build:
	$(GO) build ./...

# The default test run: vet, then every package's tests (the official
# vectors included). Kept under a few minutes on 2 cores.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -short -count=1 ./engine ./storage/...

# The long scenario run: 8 seeds x 1,000 epochs over all seven suites
# through the engine, every member reloaded from storage before every
# operation (about 15 minutes on 2 cores, most of it the P-521 suite).
soak:
	MLS_SOAK=1 $(GO) test -count=1 -run TestEngineScenario -timeout 90m -v ./engine

# The conformance check over the bundled official vectors.
vectors:
	$(GO) run ./cmd/mlsadmin vectors testdata/vectors

# Runs every Fuzz target in the module for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

# Benchmarks, repeated for benchstat: make bench > new.txt; benchstat old.txt new.txt
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(BENCHCOUNT) $(BENCHPKGS)

# What each engine operation asks of storage (requests, records, bytes) at
# 10 to 50,000 members, and the cost of loading a group and decrypting
# after a cold load; compare two runs with benchstat.
storagecost:
	$(GO) test -run='^$$' -bench='BenchmarkStorageCost|BenchmarkLoadGroup|BenchmarkColdDecrypt' -benchmem -benchtime=5x -count=$(BENCHCOUNT) -timeout=90m ./engine

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
