# mlsengine build targets. `make test` is the command CI runs (see .ci/run).
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
BENCHPKGS ?= ./...

.PHONY: all run build test vectors fuzz bench storagecost soak lint bench-jetstore audit soak-jetstore cluster bench-pipeline

all: build test

# The main job: a worker on its embedded NATS server and mlsadmin demo
# driving hosted members and an outside client through it.
run:
	GO=$(GO) ./scripts/run.sh

build:
	$(GO) build ./...

# The default test run: vet, then every package's tests (the official
# vectors included). Kept under a few minutes on 2 cores.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -short -count=1 ./engine ./storage/... ./jetstore/... ./worker ./events

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

# Engine operations on jetstore against the memory backend (time, requests,
# bytes, erasures, ratios); compare runs with benchstat.
bench-jetstore:
	$(GO) test -run='^$$' -bench=BenchmarkJetStore -benchtime=10x -count=$(BENCHCOUNT) -timeout=90m ./engine

# The worker end to end on an embedded file-store server (application
# messages and commits, command to observed event), with the engine's
# in-memory rate beside each; -v logs the table of medians. Compare runs
# with benchstat. PIPELINE_BENCHTIME=20s for steadier p99s; MLS_BENCH_TAP=1
# counts the server's messages by subject.
bench-pipeline:
	$(GO) test -run='^$$' -bench=BenchmarkPipeline -benchtime=$(or $(PIPELINE_BENCHTIME),5s) -count=$(BENCHCOUNT) -timeout=120m -v ./worker

# The on-disk forward-secrecy audit, long: 1,000 epochs and 10,000 messages.
audit:
	MLS_AUDIT_EPOCHS=1000 $(GO) test -count=1 -run TestJetStoreForwardSecrecyAudit -timeout=90m -v ./engine

# The engine scenario on jetstore, long.
soak-jetstore:
	MLS_JETSTORE_EPOCHS=300 $(GO) test -count=1 -run TestEngineScenarioJetStore -timeout=90m -v ./engine

# jetstore on a three-node cluster of nats-server processes built from the
# module: conformance, and the erasure window of the Raft logs (minutes).
cluster:
	NATSTEST_CLUSTER=1 $(GO) test -count=1 -run 'TestCluster' -timeout=60m -v ./internal/natstest ./jetstore

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
