# evalstore build, test and run targets. See README.md.
GO       ?= go
DATA_DIR ?= ./data
# Packages with goroutines or shared state run under the race detector.
RACE_PKGS ?= ./sketch/... ./tsdb/... ./query/... ./ingest/... ./definitions/... ./api/... ./rules/... ./cmd/...
BENCHTIME ?= 1s

.PHONY: all build run test fmt-check vet staticcheck unit bench bench-peers fuzz clean

all: build

build:
	$(GO) build -o bin/evalstore ./cmd/evalstore

# Serves on :9470 (override with LISTEN=127.0.0.1:9470); Ctrl-C stops it
# cleanly (in-flight requests finish, the WAL is flushed and closed).
LISTEN   ?= :9470
# DEFINITIONS=evalstore-demo.yaml (written by `evalstore demo`) serves with a definitions file.
DEFINITIONS ?=

run: build
	./bin/evalstore serve -data-dir $(DATA_DIR) -listen $(LISTEN) $(if $(DEFINITIONS),-definitions $(DEFINITIONS))

test: fmt-check vet staticcheck unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck is pinned in go.mod (tool directive) so every machine runs the same version.
staticcheck:
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 $(RACE_PKGS)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -E '/(sketch|tsdb|query|ingest|definitions|api|rules|cmd)(/|$$)')

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# Comparisons against real peers in the same binary (see bench/README.md).
bench-peers:
	$(GO) test -run '^$$' -bench FloatAppend -benchmem -count 6 ./tsdb/
	$(GO) test -run '^$$' -bench RemoteWrite -benchmem -count 6 ./ingest/remotewrite/
	$(GO) test -run '^$$' -bench Grafana7d -benchmem -count 6 ./query/
	$(GO) test -run '^$$' -bench Parse -benchmem -count 6 ./query/parser/

fuzz:
	FUZZTIME=$${FUZZTIME:-10s} ./scripts/fuzz.sh

clean:
	rm -rf bin
