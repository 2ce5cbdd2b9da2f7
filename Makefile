# airlock — make run (the lab) and make test (everything) are the two entry points.
GO      ?= go
BIN     := bin/airlock
PKGS    := ./...
# Packages with concurrency run under the race detector.
RACE    ?= -race
TIMEOUT ?= 20m

.PHONY: build run test vet tools clean

build:
	$(GO) build -o $(BIN) ./cmd/airlock

run: build
	$(BIN) lab

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet build
	$(GO) test $(RACE) -timeout $(TIMEOUT) $(PKGS)

clean:
	rm -rf bin data
