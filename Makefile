# airlock — make run (the lab) and make test (everything) are the two entry points.
GO      ?= go
BIN     := bin/airlock
PKGS    := ./...
# Packages with concurrency run under the race detector.
RACE    ?= -race
TIMEOUT ?= 20m

# The release build (the Dockerfile runs `make static`): no cgo, so the
# binary runs on a distroless/static image; no paths or build ids.
STATIC_FLAGS := -trimpath -ldflags='-s -w -buildid='
IMAGE   ?= airlock:dev

.PHONY: build static image run test vet tools clean

build:
	$(GO) build -o $(BIN) ./cmd/airlock

static:
	CGO_ENABLED=0 $(GO) build $(STATIC_FLAGS) -o $(BIN) ./cmd/airlock

image:
	docker build -t $(IMAGE) .

run: build
	$(BIN) serve --config examples/airlock.yaml

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet build
	$(GO) test $(RACE) -timeout $(TIMEOUT) $(PKGS)

clean:
	rm -rf bin data
