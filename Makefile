# airlock — make run (the lab) and make test (everything) are the two entry points.
GO      ?= go
BIN     := bin/airlock
PKGS    := ./...
# The proof with real clients (make e2e); also part of make test.
E2E_PKG := ./cmd/airlock/e2e
# Packages with concurrency run under the race detector.
RACE    ?= -race
TIMEOUT ?= 20m
# make fuzz: each target for FUZZTIME with FUZZPARALLEL workers (not in CI).
FUZZTIME     ?= 20s
FUZZPARALLEL ?= 1
FUZZ_TARGETS := ./registry:FuzzParsePath ./registry:FuzzParseRange \
                ./cache/engine:FuzzParseManifest ./cache/engine:FuzzReference \
                ./rules:FuzzRules ./rules:FuzzValidComponent ./cache/content:FuzzValidateDigest \
                ./reference:FuzzParse

# The release build (the Dockerfile runs `make static`): no cgo, so the
# binary runs on a distroless/static image; no paths or build ids.
STATIC_FLAGS := -trimpath -ldflags='-s -w -buildid='
IMAGE   ?= airlock:dev

BENCH_FLAGS ?= --scale small
BENCH_OUT   ?= bench-results

.PHONY: build static image run test e2e vet tools fuzz clean bench

build:
	$(GO) build -o $(BIN) ./cmd/airlock

static:
	CGO_ENABLED=0 $(GO) build $(STATIC_FLAGS) -o $(BIN) ./cmd/airlock

image:
	docker build -t $(IMAGE) .

run: build
	$(BIN) lab

# External tools the tests use: the OCI conformance suite, crane and oras
# (pinned, in bin/tools); containerd, skopeo and iproute2 (apt-get, root).
tools:
	scripts/install-tools.sh

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The tests run the binary just built (the e2e suite executes it).
test: tools vet build
	AIRLOCK_BIN=$(abspath $(BIN)) $(GO) test $(RACE) -timeout $(TIMEOUT) $(PKGS)

# Only the e2e suite (containerd, skopeo, crane, oras, OCI conformance in
# pull mode, zero egress in network namespaces), never cached; needs root.
e2e: tools build
	AIRLOCK_BIN=$(abspath $(BIN)) $(GO) test $(RACE) -count=1 -v -timeout 10m $(E2E_PKG)

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -parallel=$(FUZZPARALLEL) $$pkg; \
	done

# bin/distproxy is the distribution target (distribution v3 proxy); the bench
# finds it next to bin/airlock.
bench: build
	$(GO) build -o bin/distproxy ./bench/cmd/distproxy
	$(BIN) bench $(BENCH_FLAGS) --out $(BENCH_OUT)

clean:
	rm -rf bin data $(BENCH_OUT)
