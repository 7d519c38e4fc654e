# Sluice: the commands a developer and CI use. `make help` lists them.

GO       ?= go
PKGS     ?= ./...
BIN      ?= bin/sluice
# Postgres for tests: unset skips the Postgres tests with a message.
# SLUICE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: help build run test test-short e2e bench lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the sluice binary into bin/
	$(GO) build -o $(BIN) ./cmd/sluice

run: ## start a node on the embedded store in ./data (no setup needed)
	$(GO) run ./cmd/sluice serve

test: ## run every test with the race detector (Postgres tests need SLUICE_TEST_POSTGRES)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short: ## quick tests without the race detector or the binary tests
	$(GO) test -short -count=1 $(PKGS)

e2e: ## the real @oceanprotocol/uploader 0.0.3 and ganache against the built binary (needs node and npm)
	@e2e/run.sh

bench: ## run the benchmarks and print the figures the issues ask for
	@scripts/bench.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output (not ./data)
	rm -rf bin
