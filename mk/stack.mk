# The observability stack: tools the stack tests need, the docker-compose
# stack, its static validation, and the dashboards module's tests.
#
#   make tools            install Jaeger, Prometheus + promtool, docker-compose, chromium (idempotent, cached)
#   make up / make down   start / stop docker-compose.yml (needs a Docker engine)
#   make dashboards       regenerate dashboards/*.json
#   make test-dashboards  vet + race tests of the dashboards module (generator, golden JSON, lint)
#   make test-stack       validate docker-compose.yml and deploy/ offline (docker-compose config,
#                         promtool check config, promtool check/test rules, jaeger validate,
#                         mounts, ports, provisioning)

# Built binaries live here (gitignored). Pinned versions:
#   Jaeger      github.com/jaegertracing/jaeger v1.76.0 (= Jaeger v2.13.0)      tools/go.mod
#   Prometheus  github.com/prometheus/prometheus v0.316.0 (= Prometheus 3.16.0)  tools/prometheus/go.mod
# Both are built from the Go module proxy (`go tool` dependencies of their own
# modules, so neither touches the library's go.mod nor each other's versions);
# the compose file pins the images of the same versions.
STACK_BIN ?= $(CURDIR)/.cache/bin
JAEGER := $(STACK_BIN)/jaeger
PROMETHEUS := $(STACK_BIN)/prometheus
PROMTOOL := $(STACK_BIN)/promtool
JAEGER_VERSION := v2.13.0
PROMETHEUS_VERSION := 3.16.0

# Debian (bookworm) packages: docker-compose parses the compose file offline
# (`config -q`), chromium drives the browser test. Versions follow the
# distribution release; installs are skipped when the package is present.
APT_PACKAGES := docker-compose chromium fonts-liberation
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# docker compose v2 if the engine's plugin is there, Debian's v1 otherwise.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

TEST_TARGETS += test-dashboards test-stack

.PHONY: tools tools-go tools-apt up down dashboards test-dashboards test-stack

tools: tools-go tools-apt

tools-go: $(JAEGER) $(PROMETHEUS) $(PROMTOOL)

# Rebuilt only when the tool module's pins change (or the binary is missing);
# the Go build cache makes a rebuild after a fresh clone a relink.
$(JAEGER): tools/go.mod tools/go.sum
	@mkdir -p $(STACK_BIN)
	@echo "building jaeger $(JAEGER_VERSION) (cold: ~12-15 min on 2 cores)"
	cd tools && $(GO) build -trimpath \
	  -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$(JAEGER_VERSION)" \
	  -o $@ github.com/jaegertracing/jaeger/cmd/jaeger
	@touch $@

$(PROMETHEUS) $(PROMTOOL) &: tools/prometheus/go.mod tools/prometheus/go.sum
	@mkdir -p $(STACK_BIN)
	@echo "building prometheus + promtool $(PROMETHEUS_VERSION) (cold: ~10 min on 2 cores)"
	cd tools/prometheus && $(GO) build -trimpath \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(PROMETHEUS_VERSION)" \
	  -o $(STACK_BIN)/ github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
	@touch $(PROMETHEUS) $(PROMTOOL)

tools-apt:
	@missing=; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

up:
	DEMO_VERSION='$(DEMO_VERSION)' $(COMPOSE) -p taskscope up -d --build
	@echo "Grafana http://127.0.0.1:3000  demo http://127.0.0.1:8080  Prometheus http://127.0.0.1:9090  Jaeger http://127.0.0.1:16686"

down:
	$(COMPOSE) -p taskscope down

dashboards:
	cd dashboards && $(GO) generate ./...

test-dashboards:
	cd dashboards && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# The stack checks live in dashboards/stack (a Go test); TASKSCOPE_STACK_TOOLS=require
# turns "tool not installed" from a skip into a failure.
test-stack: tools
	cd dashboards && TASKSCOPE_STACK_TOOLS=require PROMTOOL=$(PROMTOOL) JAEGER=$(JAEGER) \
	  $(GO) test -count=1 -v ./stack/
