# taskscope: `make test` is what CI runs (.ci/run); `make demo` runs the demo.
GO ?= go
export GOFLAGS ?= -buildvcs=false

# Included makefiles append their own suites to TEST_TARGETS.
TEST_TARGETS := test-lib

.PHONY: all test test-lib demo bench lint vet fmt-check
all: test

include $(wildcard mk/*.mk)

test: $(TEST_TARGETS)

vet:
	$(GO) vet ./...

# The library: race tests (synctest-based, so fast), the wasm build of the
# core, a 32-bit build of everything, and the rule that runtime and
# diagnostics use only the standard library. mk/racetest.sh reruns the race
# tests once when Go 1.26's race runtime crashed (golang/go#78156), and
# only then: a failing test is never retried.
test-lib: vet fmt-check
	mk/racetest_test.sh
	mk/racetest.sh $(GO) -count=1 ./...
	@# The stack budgets hold only without the race detector's instrumentation.
	$(GO) test -count=1 -run 'Stack' ./telemetry
	GOOS=wasip1 GOARCH=wasm $(GO) build ./runtime/
	GOARCH=386 $(GO) build ./...
	@ext=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./runtime ./diagnostics | grep -v '^github.com/taskscope/taskscope' || true); \
	  if [ -n "$$ext" ]; then echo "runtime/diagnostics import outside the standard library: $$ext"; exit 1; fi

# The demo's service.version: builds run with -buildvcs=false (above), so
# the revision is stamped here (make up passes it to the image build too).
DEMO_VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
DEMO_LDFLAGS := -X main.version=$(DEMO_VERSION)

# Built, then exec'd: `go run` exits 1 when interrupted, so Ctrl-C would
# end a clean shutdown with a make error.
demo:
	$(GO) build -ldflags '$(DEMO_LDFLAGS)' -o $(STACK_BIN)/demo ./cmd/demo && exec $(STACK_BIN)/demo $(ARGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet fmt-check
	$(GO) run $(STATICCHECK) ./...
