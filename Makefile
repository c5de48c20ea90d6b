# wfevents: the targets a developer and CI use. "make help" lists them.

GO      ?= go
ADDR    ?= 127.0.0.1:2746
# Tools the build installs go here, outside the repository, so later runs on
# the same machine reuse them.
TOOLS_BIN ?= $(HOME)/.cache/wfevents/bin
MOCKERY_VERSION := v2.53.7

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start the server on an embedded cluster seeded from fixtures/ (ADDR=host:port, ARGS=more flags)
	$(GO) run ./cmd/wfevents serve --addr $(ADDR) --fixtures fixtures $(ARGS)

.PHONY: build
build: ## Build bin/wfevents
	$(GO) build -o bin/wfevents ./cmd/wfevents

.PHONY: kube-binaries
kube-binaries: ## Build kube-apiserver, kubectl and etcd for the integration tests, cached outside the repository
	tools/kube/build.sh

KUBE_DIR ?= /tmp/wfevents-cluster
.PHONY: kube-up
kube-up: kube-binaries ## Run a local kube-apiserver and etcd with the Argo CRDs until Ctrl-C (kubeconfig in KUBE_DIR)
	$(GO) run ./kube/kubetest/localcluster --dir $(KUBE_DIR)

.PHONY: crds
crds: ## Regenerate deploy/crds.yaml from kube/kubetest/testdata/crds
	$(GO) run ./deploy/gencrds

.PHONY: test
test: kube-binaries replay-streams ## Run every test with the race detector, integration tests on a real API server included
	$(GO) test -race -count=1 ./...

STREAMS := $(wildcard fixtures/streams/*.jsonl)

.PHONY: replay-streams
replay-streams: ## Replay each fixtures/streams/*.jsonl on fixtures/ and fail on any difference from its .expected.json
	$(GO) build -o bin/wfevents ./cmd/wfevents
	@set -e; for stream in $(STREAMS); do \
		echo "replay $$stream"; \
		bin/wfevents replay --fixtures fixtures --expect $${stream%.jsonl}.expected.json $$stream > /dev/null; \
	done

.PHONY: replay-update
replay-update: ## Rewrite the .expected.json of every fixtures/streams/*.jsonl from a replay
	$(GO) build -o bin/wfevents ./cmd/wfevents
	@set -e; for stream in $(STREAMS); do \
		echo "update $${stream%.jsonl}.expected.json"; \
		bin/wfevents replay --fixtures fixtures --update --expect $${stream%.jsonl}.expected.json $$stream > /dev/null; \
	done

.PHONY: lint
lint: ## Check formatting and run go vet
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './tools/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./deploy/gencrds --check

.PHONY: check
check: lint test ## Check formatting, run go vet, then every test

.PHONY: bench
bench: ## Run the Go benchmarks (not part of test)
	$(GO) test -run '^$$' -bench . -benchmem ./...

CLUSTER_RUNS ?= 3

.PHONY: bench-cluster
bench-cluster: kube-binaries ## Compare wfevents with a client-go create loop on a real kube-apiserver, CLUSTER_RUNS times (about 30 s each)
	@mkdir -p $(LOAD_DIR)
	$(GO) test -c -o $(LOAD_DIR)/app.test ./app
	@set -e; for run in $$(seq $(CLUSTER_RUNS)); do \
		out=$(LOAD_DIR)/bench-cluster-$$run.txt; \
		echo "== run $$run, machine before: $$(nproc) CPUs, $$(uptime)"; \
		$(LOAD_DIR)/app.test -test.run '^$$' -test.bench BenchmarkClusterWorkflows -test.benchtime 2000x > $$out || { cat $$out; exit 1; }; \
		cat $$out; \
		echo "== run $$run, machine after: $$(nproc) CPUs, $$(uptime)"; \
	done

.PHONY: mocks
mocks: ## Regenerate server/mocks with mockery $(MOCKERY_VERSION)
	GOBIN=$(TOOLS_BIN) GOFLAGS=-mod=mod $(GO) install github.com/vektra/mockery/v2@$(MOCKERY_VERSION)
	rm -f server/mocks/*.go
	$(TOOLS_BIN)/mockery --config .mockery.yaml

LOAD_DIR ?= build/load
# STORM_RATE is ten times the rate that the capacity run below sustains:
# 4 workers with a 10ms Workflow create keep up with about 400 events/s.
STORM_RATE ?= 4000

.PHONY: load
load: ## Run the load scenarios limit and a short capacity search in-process, reports in build/load/
	$(GO) build -o $(LOAD_DIR)/wfevents ./cmd/wfevents
	$(LOAD_DIR)/wfevents load limit --json $(LOAD_DIR)/limit.json --plot $(LOAD_DIR)/limit.html
	$(LOAD_DIR)/wfevents load capacity --api-latency 10ms --duration 30s --json $(LOAD_DIR)/capacity.json --plot $(LOAD_DIR)/capacity.html

.PHONY: bench-report
bench-report: ## Measure the figures of docs/benchmarks.md and print them for pasting (about 5 minutes)
	@mkdir -p $(LOAD_DIR)
	@echo "== machine before"; nproc; uptime; top -bn1 | sed -n '7,12p'
	$(GO) build -o $(LOAD_DIR)/wfevents ./cmd/wfevents
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./server ./matcher ./workers | tee $(LOAD_DIR)/bench.txt
	$(LOAD_DIR)/wfevents load rate --handler noop --rate 0 --max-workers 8 --max-requests 200000 --json $(LOAD_DIR)/noop-unpaced.json
	$(LOAD_DIR)/wfevents load rate --namespace bench --rate 0 --max-workers 8 --max-requests 200000 --json $(LOAD_DIR)/admission-unpaced.json
	$(LOAD_DIR)/wfevents load rate --rate 1000 --json $(LOAD_DIR)/rate-1000.json --plot $(LOAD_DIR)/rate-1000.html
	$(LOAD_DIR)/wfevents load capacity --api-latency 10ms --step-duration 5s --duration 90s --json $(LOAD_DIR)/capacity.json --plot $(LOAD_DIR)/capacity.html
	$(LOAD_DIR)/wfevents load rate --api-latency 10ms --rate $(STORM_RATE) --duration 30s --max-requests $$(( $(STORM_RATE) * 30 )) --json $(LOAD_DIR)/storm.json --plot $(LOAD_DIR)/storm.html
	$(LOAD_DIR)/wfevents load rate --api-latency 10ms --api-discard-workflows --rate $(STORM_RATE) --duration 30s --max-requests $$(( $(STORM_RATE) * 30 )) --json $(LOAD_DIR)/storm-discard.json
	$(LOAD_DIR)/wfevents load limit --json $(LOAD_DIR)/limit.json --plot $(LOAD_DIR)/limit.html
	@echo "== machine after"; uptime
