# syntax=docker/dockerfile:1
# airlock: docker build -t airlock .
# The binary is built by `make static`, the same static, CGO-free build a
# developer gets locally; the final image is distroless (no shell, no
# package manager) and runs as the nonroot user (65532).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make static BIN=/out/airlock
# The store directory, owned by the runtime user (a volume mounts over it).
RUN mkdir -p /out/store

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/airlock /usr/local/bin/airlock
COPY --from=build --chown=65532:65532 /out/store /var/lib/airlock
COPY deploy/docker/airlock.yaml /etc/airlock/airlock.yaml
USER 65532:65532
EXPOSE 5000
VOLUME ["/var/lib/airlock"]
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["serve", "--config", "/etc/airlock/airlock.yaml"]
