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
                ./cache/manifest:FuzzParseManifest ./cache/engine:FuzzReference \
                ./rules:FuzzRules ./rules:FuzzValidComponent ./cache/content:FuzzValidateDigest \
                ./reference:FuzzParse

# The release build (the Dockerfile runs `make static`): no cgo, so the
# binary runs on a distroless/static image; no paths or build ids.
STATIC_FLAGS := -buildvcs=auto -trimpath -ldflags='-s -w -buildid='
IMAGE   ?= airlock:dev

BENCH_FLAGS ?= --scale small
DISTPROXY   := bench/cmd/distproxy
BENCH_OUT   ?= bench-results

.PHONY: build static image run test e2e vet tools fuzz clean bench distproxy

# -buildvcs=auto: airlock version names the commit even where GOFLAGS has
# -buildvcs=false (an explicit flag wins over GOFLAGS).
build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/airlock

static:
	CGO_ENABLED=0 $(GO) build $(STATIC_FLAGS) -o $(BIN) ./cmd/airlock

image:
	docker build -t $(IMAGE) .

# make run NODES=2: the lab with two emulated AKS nodes (root, containerd);
# make run REPLICAS=3: three airlock replicas on Azurite (scripts/install-tools.sh azurite);
# LAB_FLAGS: more flags of airlock lab, e.g. other ports:
# make run LAB_FLAGS='--listen 127.0.0.1:5050 --mar-listen 127.0.0.1:6060'.
# Without them the command is exactly `bin/airlock lab`.
NODES     ?=
REPLICAS  ?=
LAB_FLAGS ?=
run: build
	$(BIN) lab$(if $(NODES), --nodes $(NODES))$(if $(REPLICAS), --replicas $(REPLICAS))$(if $(LAB_FLAGS), $(LAB_FLAGS))

# External tools the tests use: the OCI conformance suite, crane, oras and
# containerd 2.x (pinned, in bin/tools); containerd 1.6, skopeo and iproute2
# (apt-get, root);
# Azurite (npm, pinned, in bin/tools/azurite; node and npm via apt-get).
tools:
	scripts/install-tools.sh

vet:
	$(GO) vet $(PKGS)
	$(GO) -C $(DISTPROXY) vet ./...
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

# bin/distproxy is the distribution target (distribution v3 proxy, its own
# module so that the product's go.mod does not carry it); the bench finds it
# next to bin/airlock.
bench: build distproxy
	$(BIN) bench $(BENCH_FLAGS) --out $(BENCH_OUT)

distproxy:
	$(GO) -C $(DISTPROXY) build -o $(abspath bin/distproxy) .

clean:
	rm -rf bin data $(BENCH_OUT)
