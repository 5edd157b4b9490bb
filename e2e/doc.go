// Package e2e is the end-to-end proof of the taskscope demo stack: its
// tests start the real programs on loopback and check what a user of each
// would see.
//
// TestStack (stack_test.go) runs one demo (cmd/demo, built from this
// working tree) with the real Prometheus, an OpenTelemetry Collector and
// Jaeger around it, all installed by `make tools` (mk/stack.mk) into
// .cache/bin, and headless Debian Chromium:
//
//   - Prometheus scrapes the demo with deploy/prometheus/prometheus.yml
//     (a copy with only the scrape target's address changed); every query
//     of every dashboard panel (dashboards.Queries) must return a series,
//     and the duration histogram must carry trace_id exemplars.
//   - The demo exports OTLP to a collector (the Jaeger binary running
//     deploy/otel-collector/config.yaml), which forwards to Jaeger
//     (deploy/jaeger/config.yaml): demo → collector → Jaeger, as in
//     docker-compose.yml. After the demo is stopped with SIGTERM, Jaeger's
//     HTTP API must show task spans of every outcome with the attributes
//     and status of the telemetry contract, panic stacks, child spans and
//     the shutdown span naming the aborted task.
//   - Chromium opens /debug/tasks and watches the tree update live.
//   - An SSE and an NDJSON client read /debug/events.
//
// Ports are free ones picked at run time. Logs of every child process, the
// config copies and API responses are kept under e2e/artifacts/ when a
// test fails (E2E_KEEP_ARTIFACTS=1 keeps them always); the task page's
// screenshot is always written to e2e/artifacts/tasks.png.
//
// E2E_DEMO=<path> runs a prebuilt demo binary instead of building
// ./cmd/demo (to check a -race build of it, say).
//
// The tests need the binaries of `make tools`; run them with
// `make test-e2e` from the repository root. Without the tools they fail,
// unless E2E_TOOLS=skip is set.
package e2e
