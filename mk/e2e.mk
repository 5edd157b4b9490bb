# End-to-end proof: e2e/ is its own module (chromedp and the dashboards
# module stay out of the library's go.mod). Its tests build cmd/demo and run
# it with the real Prometheus, OpenTelemetry Collector and Jaeger of
# `make tools` (.cache/bin) and Debian's chromium, all on loopback with free
# ports; see e2e/doc.go.
#
#   make test-e2e    vet + race tests of the e2e module (about 2 minutes once
#                    the tools are built; the first `make tools` takes longer)
#
# Logs of the child processes, config copies and API responses are kept in
# e2e/artifacts/run/ when a test fails (E2E_KEEP_ARTIFACTS=1: always); the
# task page's screenshot is e2e/artifacts/tasks.png. E2E_UPDATE_SCREENSHOTS=1
# also refreshes docs/screenshots/tasks.png.
E2E_FLAGS ?=

.PHONY: test-e2e

test-e2e: tools
	cd e2e && $(GO) vet ./... && PROMETHEUS=$(PROMETHEUS) JAEGER=$(JAEGER) $(GO) test -race -count=1 -timeout 10m $(E2E_FLAGS) ./...

TEST_TARGETS += test-e2e
