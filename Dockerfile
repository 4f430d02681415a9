# syntax=docker/dockerfile:1
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version printed by `sessiongate version`: docker build --build-arg VERSION=1.2.3
ARG VERSION=dev
# The same build line that .ci/run runs.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION:-dev}" -o bin/sessiongate ./cmd/sessiongate

# A static binary needs no libc; distroless/static also ships CA
# certificates for rediss:// and the user "nonroot" (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/sessiongate /usr/local/bin/sessiongate
USER 65532:65532
# The admin listener must be reachable by the orchestrator's probes, so it
# listens on all interfaces here; publish only port 8080.
ENV LISTEN_ADDR=:8080 ADMIN_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/sessiongate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sessiongate"]
