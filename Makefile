# Baton — targets a newcomer can guess. `make run` and `make test` are the
# two set-up commands; everything else is optional.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# buf is pinned in its own module (tools/go.mod) so its dependencies never
# leak into Baton's go.mod; protoc-gen-go is a tool of the main module.
BUF         ?= $(GO) tool -modfile=tools/go.mod buf
TEST_FLAGS  ?= -race -count=1 -timeout 25m
PKGS        ?= ./...

.PHONY: run test deps proto proto-check lint api bench fuzz reliability fmt-check ci

## run: the quickstart tour on the embedded default (an embedded etcd in a temp dir; nothing to install)
run:
	$(GO) run ./examples/quickstart

## test: every test (unit, conformance on both backends, actors, runtime) with -race against real servers
test: deps
	$(GO) test $(TEST_FLAGS) $(PKGS)

## deps: make sure redis-server is installed (the etcd server comes from Go modules)
deps:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing redis-server with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else \
		echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis)"; \
		exit 1; \
	fi

## proto: regenerate messages/ from the .proto files with pinned buf + protoc-gen-go (no system protoc)
proto:
	$(BUF) format -w
	$(BUF) lint
	$(BUF) generate

## proto-check: fail if regeneration changes anything
proto-check:
	$(BUF) format -d --exit-code
	$(BUF) lint
	$(BUF) generate
	@git diff --exit-code -- messages/ || (echo "generated code is stale: run make proto and commit"; exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- messages/)" || (git status --porcelain -- messages/; echo "make proto created untracked files"; exit 1)

## lint: go vet + staticcheck (pinned)
lint:
	$(GO) vet $(PKGS)
	$(GO) vet -tags containers ./integration/harness/
	$(GO) vet -tags reliability ./integration/...
	$(GO) run $(STATICCHECK) $(PKGS)

## api: rewrite the golden `go doc -all` files of the public packages (integration/testdata/api) after a deliberate API change
api:
	$(GO) test ./integration -run TestPublicAPI -count=1 -update-api

## fuzz: every fuzz target for FUZZTIME each (seed corpora under testdata/fuzz); a crash, hang or untyped error fails
FUZZTIME    ?= 10s
fuzz:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do \
		pkg="./$$(dirname "$$f")"; \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' "$$f" | cut -d' ' -f2); do \
			echo "fuzz: $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) "$$pkg" >/dev/null || { $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 1x "$$pkg"; exit 1; }; \
		done; \
	done

## reliability: fault scenarios with checked histories, then the fuzz targets; ends with one summary line (fails on any loss, double grant, stale write or hang)
REL_DIR     ?= $(CURDIR)/.reliability
reliability: deps
	@rm -rf $(REL_DIR) && mkdir -p $(REL_DIR)
	BATON_RELIABILITY_REPORT=$(REL_DIR)/report.jsonl $(GO) test -tags reliability -count=1 -timeout 14m -run '^TestReliability' ./integration/... 2>&1 | tee $(REL_DIR)/test.log | grep -E '^(---|ok|FAIL|panic)' || true
	@grep -q '^FAIL' $(REL_DIR)/test.log && { grep -B5 -A30 -- '--- FAIL' $(REL_DIR)/test.log | head -200; exit 1; } || true
	@$(MAKE) --no-print-directory fuzz
	@$(GO) run ./integration/cmd/reliability-summary -list $(REL_DIR)/report.jsonl

## fmt-check: gofmt must print nothing
fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: side-by-side benchmarks against the direct clients (prints a table; never fails on speed)
bench: deps
	$(GO) run ./integration/bench

## ci: what .ci/run does after installing dependencies
ci: test proto-check fmt-check lint
	$(GO) build ./...
