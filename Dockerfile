# The taskscope demo service, for docker-compose.yml (`make up`).
# Build stage: the pinned Go toolchain; the demo is a static binary.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# service.version (make up passes git describe; .git is not in the context).
ARG DEMO_VERSION=""
RUN go build -trimpath -ldflags="-s -w -X main.version=${DEMO_VERSION}" -o /out/taskscope-demo ./cmd/demo

# Run stage: distroless static (Debian 12), non-root, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/taskscope-demo /usr/local/bin/taskscope-demo
EXPOSE 8080
USER nonroot:nonroot
# Inside a container the demo must listen on all interfaces (its default is
# 127.0.0.1:8080, loopback only, because the debug endpoints reveal internals).
ENTRYPOINT ["/usr/local/bin/taskscope-demo"]
CMD ["-addr", "0.0.0.0:8080"]
