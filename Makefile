# airlock — make run (the lab) and make test (everything) are the two entry points.
GO      ?= go
BIN     := bin/airlock
PKGS    := ./...
# Packages with concurrency run under the race detector.
RACE    ?= -race
TIMEOUT ?= 20m

# make bench: every scenario, --scale small, all targets (a few minutes).
BENCH_FLAGS ?= --scale small
BENCH_OUT   ?= bench-results

.PHONY: build run test vet tools clean bench

build:
	$(GO) build -o $(BIN) ./cmd/airlock

run: build
	$(BIN) serve --config examples/airlock.yaml

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet build
	$(GO) test $(RACE) -timeout $(TIMEOUT) $(PKGS)

# bin/distproxy is the distribution target (distribution v3 proxy); the bench
# finds it next to bin/airlock.
bench: build
	$(GO) build -o bin/distproxy ./bench/cmd/distproxy
	$(BIN) bench $(BENCH_FLAGS) --out $(BENCH_OUT)

clean:
	rm -rf bin data $(BENCH_OUT)
